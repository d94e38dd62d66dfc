/* Patient services on the admin page (#22): notices to accounts (preview = count, then send),
   a clinic's UPI id and a queue's fee, and the feedback chart and CSV for the chosen clinic. */
"use strict";
(function () {
  var QT = window.QT, d = QT.data;
  function $(id) { return document.getElementById(id); }
  function result(text, bad) {
    var p = $("nf-result");
    p.textContent = text;
    p.className = bad ? "error" : "ok";
    QT.show(p, true);
  }
  /* A form's error next to its field, else on the section's result line. */
  function failIn(f, byCode) {
    return function (err) { if (!QT.formError(f, err, byCode)) { result(QT.errorText(err), true); } };
  }
  var form = $("notice-form");
  if (!form) { return; }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var dry = !ev.submitter || ev.submitter.value !== "send";
    var channels = Array.prototype.filter.call(form.querySelectorAll("input[name=channels]"), function (c) { return c.checked; })
      .map(function (c) { return c.value; });
    var body = { purpose: form.purpose.value, channels: channels, subject: form.subject.value.trim(),
      text: form.text.value.replace(/\s+/g, " ").trim(), dry_run: dry };  /* one line, as an SMS shows it */
    /* A send is counted first and confirmed with that count: a notice cannot be called back. */
    var counted = dry ? Promise.resolve(null) : QT.api("POST", "/api/v1/admin/notices",
      Object.assign({}, body, { dry_run: true }));
    counted.then(function (count) {
      if (count && !confirm(QT.t("svc_confirm_send", { n: count.recipients }))) { return null; }
      return QT.api("POST", "/api/v1/admin/notices", body);
    }).then(function (res) {
      if (!res) { return; }
      result(QT.t(dry ? "svc_recipients" : "svc_sent", { n: res.recipients }));
      if (!dry) { form.reset(); }
    }, failIn(form));
  });

  $("upi-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    QT.api("PATCH", "/api/v1/clinics/" + encodeURIComponent(f.clinic.value), { upi_vpa: f.upi_vpa.value.trim() })
      .then(function () { result(QT.t("saved")); }, failIn(f, { not_found: "clinic" }));
  });
  $("fee-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    QT.api("PATCH", "/api/v1/queues/" + encodeURIComponent(f.queue.value.trim()), { fee: Number(f.fee.value) })
      .then(function () { result(QT.t("saved")); }, failIn(f, { not_found: "queue" }));
  });

  function loadClinic() {
    var c = $("sf-clinic") && $("sf-clinic").value;
    if (!c) { return; }
    var chart = $("chart-feedback-by-day");
    if (chart) { chart.src = "/admin/charts/" + encodeURIComponent(c) + "/feedback-by-day.svg?lang=" + d.lang; }
    $("feedback-csv").href = "/api/v1/clinics/" + encodeURIComponent(c) + "/feedback?format=csv";
    QT.api("GET", "/api/v1/clinics/" + encodeURIComponent(c)).then(function (clinic) {
      if ($("pf-clinic").value === c) { $("pf-upi").value = clinic.upi_vpa || ""; }
    }, function () {});
  }
  if ($("sf-clinic")) { $("sf-clinic").addEventListener("change", loadClinic); }
  $("pf-clinic").addEventListener("change", function () {
    QT.api("GET", "/api/v1/clinics/" + encodeURIComponent($("pf-clinic").value)).then(function (clinic) {
      $("pf-upi").value = clinic.upi_vpa || "";
    }, function () {});
  });
  loadClinic();
}());
