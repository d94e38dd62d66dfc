/* Today's appointments at the reception desk: the clinic's list for today (slot, patient,
   queue, status) from GET /api/v1/clinics/{c}/appointments, searched by name or mobile as the
   receptionist types, and checked in with one click (the ticket then prints like a walk-in's).
   Nobody types an appointment number. */
"use strict";
(function () {
  var QT = window.QT;
  var $ = function (id) { return document.getElementById(id); };
  var form = $("appt-search"), list = $("a-list"), timer = null, busy = false, asked = 0;
  if (!form || !QT.reception) { return; }

  function queueName(id) {
    var clinic = (QT.data.clinics || []).find(function (c) { return c.id === QT.reception.clinic(); });
    var q = clinic ? clinic.queues.find(function (x) { return x.id === id; }) : null;
    return q ? q.name : id;
  }

  function row(a) {
    var li = document.createElement("li"), text = document.createElement("span");
    li.dataset.id = String(a.id);
    text.className = "r-appt-text";
    text.textContent = [a.slot || QT.t("appt_date_only"), a.patient.name || "", queueName(a.queue),
      QT.t("appt_" + a.status)].filter(Boolean).join(" · ");
    li.appendChild(text);
    if (a.status === "booked") {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.textContent = QT.t("appt_check_in");
      b.setAttribute("aria-label", QT.t("appt_check_in_label", { name: a.patient.name || "" }));
      b.addEventListener("click", function () { checkIn(a, b); });
      li.appendChild(b);
    }
    return li;
  }

  function load() {
    var q = form.q.value.trim(), mine = ++asked;
    var url = "/api/v1/clinics/" + encodeURIComponent(QT.reception.clinic()) + "/appointments" +
      (q ? "?q=" + encodeURIComponent(q) : "");
    QT.api("GET", url).then(function (res) {
      if (mine !== asked) { return; }  // an older search answering late
      list.textContent = "";
      res.appointments.forEach(function (a) { list.appendChild(row(a)); });
      QT.show($("a-none"), !res.appointments.length);
    }, function (err) { if (!QT.fieldError(form, err)) { list.textContent = QT.errorText(err); } });
  }

  function checkIn(a, button) {
    if (busy) { return; }
    busy = true;
    button.disabled = true;
    QT.api("POST", "/api/v1/appointments/" + a.id + "/check-in", {}).then(function (res) {
      busy = false;
      document.dispatchEvent(new CustomEvent("qt-issued", { detail: res }));
      load();
    }, function (err) {
      busy = false;
      button.disabled = false;
      var msg = $("r-msg");
      if (msg) { msg.textContent = QT.errorText(err); msg.classList.add("error"); }
    });
  }

  form.addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
  form.q.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(load, 300); });
  $("r-clinic").addEventListener("change", load);
  load();
  setInterval(load, 60000);  // bookings and check-ins made elsewhere
})();
