/* Patient services in the portal (#22): documents for visits (upload, list, open, delete) and
   the outcome of a sign-in with an OpenID Connect provider (?oidc=reason). account.js owns the
   rest of the page; this file only reads its tables to know when patients or appointments changed. */
"use strict";
(function () {
  var QT = window.QT, data = QT.data;
  var locale = data.lang === "hi" ? "hi-IN" : "en-IN";
  function $(id) { return document.getElementById(id); }
  function say(text, bad) {
    var ok = $("flash"), err = $("failure");
    (bad ? err : ok).textContent = text;
    QT.show(bad ? err : ok, true);
    QT.show(bad ? ok : err, false);
  }

  var reason = new URLSearchParams(location.search).get("oidc");
  if (reason) { say(QT.t(reason === "no_account" ? "svc_oidc_no_account" : "svc_oidc_failed"), true); }
  if (!data.signed_in || !$("doc-upload")) { return; }

  var names = {};
  function size(n) { return n < 1048576 ? Math.ceil(n / 1024) + " KB" : (n / 1048576).toFixed(1) + " MB"; }
  function fill(select, items, label, keepFirst) {
    var chosen = select.value;
    while (select.options.length > (keepFirst ? 1 : 0)) { select.remove(select.options.length - 1); }
    items.forEach(function (it) {
      var o = document.createElement("option");
      o.value = String(it.id);
      o.textContent = label(it);
      select.appendChild(o);
    });
    if (chosen) { select.value = chosen; }
  }
  function loadChoices() {
    var form = $("doc-upload");
    return Promise.all([QT.api("GET", "/api/v1/me/patients"), QT.api("GET", "/api/v1/me/appointments")]).then(function (r) {
      names = {};
      r[0].patients.forEach(function (p) { names[p.id] = p.name; });
      fill(form.patient, r[0].patients, function (p) { return p.name; }, false);
      var open = r[1].appointments.filter(function (a) { return a.status === "booked" || a.status === "checked_in"; });
      fill(form.appointment, open, function (a) { return a.date + (a.slot ? " " + a.slot : "") + " · " + a.queue; }, true);
    });
  }
  function loadDocs() {
    return QT.api("GET", "/api/v1/me/documents").then(function (res) {
      var list = $("documents");
      list.textContent = "";
      if (!res.documents.length) {
        var empty = document.createElement("li");
        empty.className = "muted"; empty.textContent = QT.t("svc_no_docs");
        list.appendChild(empty);
      }
      res.documents.forEach(function (d) {
        var li = document.createElement("li"), a = document.createElement("a"), meta = document.createElement("span");
        a.href = "/api/v1/me/documents/" + encodeURIComponent(d.id);
        a.textContent = d.name;
        a.target = "_blank";
        a.rel = "noopener";
        meta.className = "muted";
        meta.textContent = [names[d.patient] || "", new Date(d.created_at).toLocaleDateString(locale), size(d.size)].join(" · ");
        var del = document.createElement("button");
        del.type = "button"; del.className = "secondary"; del.textContent = QT.t("svc_delete");
        del.addEventListener("click", function () {
          QT.api("DELETE", "/api/v1/me/documents/" + encodeURIComponent(d.id)).then(function () {
            say(QT.t("svc_deleted")); loadDocs();
          }, function (err) { say(QT.errorText(err), true); });
        });
        li.appendChild(a); li.appendChild(meta); li.appendChild(del);
        list.appendChild(li);
      });
    }, function (err) { say(QT.errorText(err), true); });
  }

  $("doc-upload").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var form = ev.target, btn = form.querySelector("button[type=submit]"), body = new FormData();
    body.append("file", form.file.files[0]);
    if (form.appointment.value) { body.append("appointment", form.appointment.value); }
    btn.disabled = true;
    fetch("/api/v1/me/patients/" + encodeURIComponent(form.patient.value) + "/documents", {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": data.csrf || "" }
    }).then(function (res) {
      return res.json().then(function (payload) {
        btn.disabled = false;
        if (!res.ok) {
          var e = (payload && payload.error) || {};
          say(QT.errorText({ status: res.status, code: e.code, message: e.message, retryAfter: res.headers.get("Retry-After") }), true);
          return;
        }
        form.file.value = "";
        say(QT.t("svc_uploaded"));
        loadDocs();
      });
    }, function () { btn.disabled = false; say(QT.errorText({ status: 0 }), true); });
  });

  /* A failed load is said like every other one (never an unhandled rejection: a load that
     meets the account's erasure half-way is refused with 401 before the page moves on). */
  function reload() { loadChoices().then(loadDocs).catch(function (err) { say(QT.errorText(err), true); }); }
  /* account.js redraws these tables after every change: follow it. */
  ["patients", "appointments"].forEach(function (id) {
    new MutationObserver(reload).observe($(id), { childList: true });
  });
  reload();
}());
