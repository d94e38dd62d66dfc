/* The patient portal: register, log in, verify contacts, patients, appointments (with each
   checked-in ticket followed live over /ws/t/{token}), consent, sessions, export, erasure.
   Every write goes through QT.api with the session's CSRF token; every string comes from the
   catalogue (QT.t, "js.portal_*" keys) in the page's language. */
"use strict";
(function () {
  var QT = window.QT, data = QT.data;
  var patients = [], sockets = {};
  var locale = data.locale || "en-IN";

  function $(id) { return document.getElementById(id); }
  function say(text) { var f = $("flash"); f.textContent = text; QT.show(f, true); QT.show($("failure"), false); }
  function fail(err) { var f = $("failure"); f.textContent = QT.errorText(err); QT.show(f, true); QT.show($("flash"), false); }
  /* A stored code (gender, relation, status) in words; unknown codes are shown as they are. */
  function word(prefix, code) {
    if (!code) { return ""; }
    var text = QT.t(prefix + code);
    return text === prefix + code ? code : text;
  }
  function when(iso) { return new Date(iso).toLocaleString(locale); }
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text == null ? "" : String(text); row.appendChild(td); return td; }
  function button(label, cls, onClick) {
    var b = document.createElement("button"); b.type = "button"; b.textContent = label;
    if (cls) { b.className = cls; } b.addEventListener("click", onClick); return b;
  }
  /* Form fields → body: empty text is left out (or null when `nulls`), numbers and checkboxes typed. */
  function body(form, nulls) {
    var out = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.tagName === "BUTTON" || el.tagName === "FIELDSET") { return; }
      if (el.type === "checkbox") { out[el.name] = el.checked; return; }
      var v = el.value.trim();
      if (v === "") { if (nulls) { out[el.name] = null; } return; }
      out[el.name] = el.type === "number" || el.name === "patient" ? Number(v) : v;
    });
    return out;
  }
  function submit(id, handler) {
    var form = $(id);
    if (!form) { return; }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      handler(form).then(function () { btn.disabled = false; },
        function (err) { btn.disabled = false; if (!QT.fieldError(form, err)) { fail(err); } });
    });
  }

  /* -- signed out ---------------------------------------------------------------------- */
  submit("account-login", function (form) {
    var who = form.who.value.trim(), b = { password: form.password.value };
    if (who.indexOf("@") >= 0) { b.email = who; } else { b.mobile = who; }
    return QT.api("POST", "/api/v1/auth/account-login", b).then(function () { location.reload(); });
  });
  submit("register", function (form) {
    var b = body(form, false);
    b.consent = { notifications: b.notifications, analytics: b.analytics, marketing: b.marketing };
    delete b.notifications; delete b.analytics; delete b.marketing;
    return QT.api("POST", "/api/v1/accounts", b).then(function () { location.reload(); });
  });
  if (!data.signed_in) { return; }

  /* -- signed in ----------------------------------------------------------------------- */
  function loadMe() {
    return QT.api("GET", "/api/v1/me").then(function (me) {
      var form = $("profile");
      ["name", "email", "mobile", "gender", "date_of_birth", "state", "city", "address"].forEach(function (k) { form[k].value = me[k] || ""; });
      form.lang.value = me.lang || data.lang;
      var pending = [];
      if (me.email && !me.email_verified) { pending.push("email"); }
      if (me.mobile && !me.mobile_verified) { pending.push("mobile"); }
      QT.show($("verify-card"), pending.length > 0);
      var sel = $("verify").channel;
      Array.prototype.forEach.call(sel.options, function (o) { o.hidden = pending.indexOf(o.value) < 0; });
      if (pending.length) { sel.value = pending[0]; }
    });
  }
  function loadPatients() {
    return QT.api("GET", "/api/v1/me/patients").then(function (res) {
      patients = res.patients;
      var tbody = $("patients"), sel = $("book").patient;
      tbody.textContent = ""; sel.textContent = "";
      patients.forEach(function (p) {
        var tr = document.createElement("tr");
        [p.name, p.age, word("portal_gender_", p.gender), p.blood_group, word("portal_relation_", p.relation)]
          .forEach(function (v) { cell(tr, v); });
        cell(tr, "").appendChild(button(QT.t("portal_remove"), "secondary", function () {
          if (!confirm(QT.t("portal_remove_confirm", { name: p.name }))) { return; }
          QT.api("DELETE", "/api/v1/me/patients/" + p.id).then(function () {
            say(QT.t("portal_removed", { name: p.name }));
            return refresh();
          }, fail);
        }));
        tbody.appendChild(tr);
        var o = document.createElement("option"); o.value = p.id; o.textContent = p.name; sel.appendChild(o);
      });
    });
  }
  function patientName(id) {
    var p = patients.filter(function (x) { return x.id === id; })[0];
    return p ? p.name : "";
  }
  function follow(a) {
    if (sockets[a.id] || !a.ticket || ["waiting", "called", "serving"].indexOf(a.ticket.status) < 0) { return; }
    var li = document.createElement("li"), link = document.createElement("a");
    link.href = a.ticket.track_url; link.textContent = a.ticket.label;
    var state = document.createElement("span");
    li.appendChild(link); li.appendChild(document.createTextNode(" ")); li.appendChild(state);
    $("tickets").appendChild(li); QT.show($("tickets-card"), true);
    function render(t) {
      state.textContent = t.status === "waiting" ? QT.t("portal_ticket_waiting", { n: t.position, eta: QT.minutes(t.eta_s) })
        : word("portal_ticket_", t.status) + (t.counter ? " · " + QT.where(t.counter) : "");
    }
    render(a.ticket);
    sockets[a.id] = QT.socket("/ws/t/" + encodeURIComponent(a.ticket.token), {
      message: function (msg) { if (msg.type === "snapshot" || msg.type === "update") { render(msg); } },
      stop: function (code) { return code === 4404; }
    });
  }
  function loadAppointments() {
    return QT.api("GET", "/api/v1/me/appointments").then(function (res) {
      var tbody = $("appointments");
      tbody.textContent = "";
      res.appointments.forEach(function (a) {
        var tr = document.createElement("tr");
        var status = word("portal_appt_", a.status);
        [a.date, a.slot || "", (data.queue_names || {})[a.queue] || a.queue, patientName(a.patient), a.ticket ? status + " · " + a.ticket.label : status]
          .forEach(function (v) { cell(tr, v); });
        var actions = cell(tr, "");
        if (a.status === "booked") {
          actions.appendChild(button(QT.t("portal_cancel"), "secondary", function () {
            QT.api("DELETE", "/api/v1/me/appointments/" + a.id).then(function () {
              say(QT.t("portal_cancelled_done"));
              return refresh();
            }, fail);
          }));
          if (data.checkin_code) {
            actions.appendChild(button(QT.t("portal_check_in"), "", function () {
              QT.api("POST", "/api/v1/appointments/" + a.id + "/check-in", { code: data.checkin_code })
                .then(function () { say(QT.t("portal_checked_in")); refresh(); }, fail);
            }));
          }
        }
        tbody.appendChild(tr);
        follow(a);
      });
    });
  }
  function onOff(on) { return on ? QT.t("portal_on") : QT.t("portal_off"); }
  function loadConsent() {
    return QT.api("GET", "/api/v1/me/consent").then(function (res) {
      var form = $("consent");
      ["notifications", "analytics", "marketing"].forEach(function (k) { form[k].checked = res.current[k]; });
      var ul = $("consent-history"); ul.textContent = "";
      res.history.forEach(function (h) {
        var li = document.createElement("li");
        li.textContent = QT.t("portal_consent_line", { when: when(h.changed_at), notifications: onOff(h.notifications),
          analytics: onOff(h.analytics), marketing: onOff(h.marketing) });
        ul.appendChild(li);
      });
    });
  }
  function loadSessions() {
    return QT.api("GET", "/api/v1/me/sessions").then(function (res) {
      var tbody = $("sessions"); tbody.textContent = "";
      res.sessions.forEach(function (s) {
        var tr = document.createElement("tr");
        [when(s.at), s.ip, s.os, s.browser].forEach(function (v) { cell(tr, v); });
        tbody.appendChild(tr);
      });
    });
  }
  function refresh() {
    return loadMe().then(loadPatients).then(function () {
      return Promise.all([loadAppointments(), loadConsent(), loadSessions()]);
    }).catch(fail);
  }

  function loadSlots() {
    var form = $("book"), sel = form.slot;
    if (!form.queue.value || !form.date.value) { return; }
    QT.api("GET", "/api/v1/queues/" + encodeURIComponent(form.queue.value) + "/slots?date=" + form.date.value)
      .then(function (res) {
        sel.textContent = "";
        var none = document.createElement("option"); none.value = ""; none.textContent = QT.t("portal_date_only");
        if (!res.slots) { sel.appendChild(none); return; }
        res.slots.forEach(function (s) {
          var o = document.createElement("option"); o.value = s.slot;
          o.textContent = QT.t("portal_slot_free", { slot: s.slot, n: s.free }); o.disabled = s.free === 0 || s.past;
          sel.appendChild(o);
        });
      }, fail);
  }
  $("book").queue.addEventListener("change", loadSlots);
  $("book").date.addEventListener("change", loadSlots);

  submit("verify", function (form) {
    return QT.api("POST", "/api/v1/accounts/verify", { channel: form.channel.value, code: form.code.value.trim() })
      .then(function () { form.code.value = ""; say(QT.t("portal_verified")); return refresh(); });
  });
  if ($("resend")) $("resend").addEventListener("click", function () {
    QT.api("POST", "/api/v1/accounts/verify/resend", { channel: $("verify").channel.value })
      .then(function (res) {
        var next = new Date(Date.now() + (res.retry_after_s || 60) * 1000);
        say(QT.t("portal_code_sent_next", { time: next.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit", second: "2-digit" }) }));
      }, fail);
  });
  submit("add-patient", function (form) {
    return QT.api("POST", "/api/v1/me/patients", body(form, false)).then(function () { form.reset(); say(QT.t("portal_patient_added")); return refresh(); });
  });
  submit("book", function (form) {
    return QT.api("POST", "/api/v1/me/appointments", body(form, false)).then(function () { say(QT.t("portal_booked")); return refresh(); });
  });
  submit("profile", function (form) {
    return QT.api("PATCH", "/api/v1/me", body(form, true)).then(function () {
      if (form.lang.value !== data.lang) {  /* the page follows the account's new language at once */
        var url = new URL(location.href);
        url.searchParams.set("lang", form.lang.value);
        location.assign(url.href);
        return;
      }
      say(QT.t("saved"));
      return refresh();
    });
  });
  submit("consent", function (form) {
    return QT.api("PUT", "/api/v1/me/consent", body(form, false)).then(function () { say(QT.t("portal_choices_saved")); return refresh(); });
  });
  $("erase").addEventListener("click", function () {
    if (!confirm(QT.t("portal_erase_confirm"))) { return; }
    QT.api("DELETE", "/api/v1/me").then(function () { location.assign("/account?erased=1"); }, fail);
  });
  $("account-logout").addEventListener("click", function () {
    QT.api("POST", "/api/v1/auth/account-logout", {}).then(function () { location.reload(); }, function () { location.reload(); });
  });
  refresh();
}());
