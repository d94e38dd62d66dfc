/* Self check-in: a short form → a ticket → the patient page. */
"use strict";
(function () {
  var QT = window.QT, d = QT.data;
  var form = document.getElementById("join-form"), err = document.getElementById("j-error");
  var btn = document.getElementById("j-submit");

  function fail(text) { err.textContent = text; QT.show(err, true); btn.disabled = false; }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    QT.show(err, false);
    var name = form.name.value.trim(), mobile = form.mobile.value.trim(), consent = form.consent.checked;
    if (consent && !mobile) { fail(QT.t("join_mobile_needed")); form.mobile.focus(); return; }
    var body = { notify: consent, lang: d.lang };  /* notices follow the page's language */
    if (name) { body.name = name; }
    if (mobile) { body.mobile = mobile; }
    btn.disabled = true;
    QT.api("POST", d.api_path, body).then(function (res) {
      location.assign(res.track_url);
    }, function (e) {
      btn.disabled = false;
      if (!QT.fieldError(form, e)) { fail(QT.errorText(e)); }  // the mobile's error goes next to it
    });
  });
})();
