/* Patient services at the desk (#22): look up an appointment's payment method, mark the visit
   paid, and open the documents the patient attached to it (the server audits every view). */
"use strict";
(function () {
  var QT = window.QT;
  function $(id) { return document.getElementById(id); }
  var form = $("visit-form");
  if (!form) { return; }
  var current = null;
  function fail(err) { var p = $("visit-error"); p.textContent = QT.errorText(err); QT.show(p, true); }
  function methodName(m) {
    var li = m && document.querySelector("#visit-methods li[data-m='" + m + "']");
    return li ? li.textContent : QT.t("svc_no_method");
  }
  function showPayment(appt) {
    $("visit-pay").textContent = QT.t("svc_payment", { method: methodName(appt.payment_method),
      state: QT.t(appt.paid ? "svc_paid" : "svc_unpaid") });
    QT.show($("visit-paid"), !appt.paid && appt.status !== "cancelled");
  }
  function showDocs(docs) {
    var list = $("visit-docs");
    list.textContent = "";
    if (!docs.length) {
      var none = document.createElement("li");
      none.className = "muted"; none.textContent = QT.t("svc_no_docs");
      list.appendChild(none);
    }
    docs.forEach(function (d) {
      var li = document.createElement("li"), a = document.createElement("a");
      a.href = "/api/v1/documents/" + encodeURIComponent(d.id);
      a.target = "_blank"; a.rel = "noopener";
      a.textContent = d.name;
      li.appendChild(a);
      list.appendChild(li);
    });
  }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var id = form.appointment.value.trim();
    QT.show($("visit-error"), false);
    QT.api("GET", "/api/v1/appointments/" + encodeURIComponent(id)).then(function (appt) {
      current = appt;
      showPayment(appt);
      return QT.api("GET", "/api/v1/appointments/" + encodeURIComponent(id) + "/documents").then(function (res) {
        showDocs(res.documents);
        QT.show($("visit-out"), true);
      });
    }).catch(function (err) { QT.show($("visit-out"), false); fail(err); });
  });
  $("visit-paid").addEventListener("click", function () {
    if (!current) { return; }
    QT.api("POST", "/api/v1/appointments/" + current.id + "/paid", {}).then(function (res) {
      current.paid = res.paid;
      showPayment(current);
    }, fail);
  });
}());
