/* The admin page's audit log: filters, newest entries first, "older entries" pages on
   (GET /api/v1/audit). Actors are shown by username where the staff list names them. */
"use strict";
(function () {
  var QT = window.QT;
  var $ = function (id) { return document.getElementById(id); };
  var form = $("audit-form"), list = $("audit-list"), more = $("audit-more");
  if (!form) { return; }
  var names = {}, query = "", next = null;

  function say(text, bad) {
    var m = $("a-msg");
    m.textContent = text;
    m.className = bad ? "error" : "ok";
  }

  function row(values) {
    var tr = document.createElement("tr");
    values.forEach(function (v, i) {
      var td = document.createElement("td");
      td.textContent = v;
      td.dataset.label = form.closest("section").querySelectorAll("thead th")[i].textContent;
      tr.appendChild(td);
    });
    return tr;
  }

  function who(actor) {
    if (actor === "anonymous") { return QT.t("audit_anonymous"); }
    return names[actor] || actor;
  }

  function when(at) { return at.replace("T", " ").replace("Z", ""); }

  function load(append) {
    var url = "/api/v1/audit?" + query + (append && next ? "&before=" + next : "");
    QT.api("GET", url).then(function (res) {
      if (!append) { list.textContent = ""; }
      if (!append && !res.entries.length) { list.appendChild(row([QT.t("audit_none"), "", "", "", ""])); }
      res.entries.forEach(function (e) {
        list.appendChild(row([when(e.at), who(e.actor), e.action, e.target, e.ip]));
      });
      next = res.next_before;
      more.hidden = !next;
    }, function (err) { say(QT.errorText(err), true); });
  }

  function filters() {
    var params = [];
    ["from", "to", "actor", "action"].forEach(function (name) {
      var value = form.elements[name].value.trim();
      if (value) { params.push(name + "=" + encodeURIComponent(value)); }
    });
    return params.join("&");
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    query = filters();
    load(false);
  });
  more.addEventListener("click", function () { load(true); });

  QT.api("GET", "/api/v1/admin/users").then(function (res) {
    var select = form.elements.actor;
    (res.users || []).forEach(function (u) {
      names["user:" + u.id] = u.username;
      var o = document.createElement("option");
      o.value = "user:" + u.id;
      o.textContent = u.username;
      select.appendChild(o);
    });
  }).then(function () { load(false); }, function () { load(false); });
})();
