/* Patient services on the ticket page (#22): the rating form appears once the visit is done
   (ticket.js keeps #p-card's data-status current from the live socket) and is sent once. */
"use strict";
(function () {
  var QT = window.QT, data = QT.data;
  var card = document.getElementById("p-card"), box = document.getElementById("p-rate");
  var form = document.getElementById("rate-form");
  if (!card || !box || !form) { return; }
  function sync() { QT.show(box, card.dataset.status === "done"); }
  new MutationObserver(sync).observe(card, { attributes: true, attributeFilter: ["data-status"] });
  sync();
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var btn = form.querySelector("button[type=submit]"), chosen = form.querySelector("input[name=rating]:checked");
    var body = { rating: Number(chosen ? chosen.value : 0) }, comment = form.comment.value.replace(/\s+/g, " ").trim();  /* one line: the API refuses control characters */
    if (comment) { body.comment = comment; }
    btn.disabled = true;
    QT.api("POST", data.feedback_path, body).then(function () {
      var done = document.getElementById("rate-done");
      done.textContent = QT.t("svc_rated");
      QT.show(done, true);
      QT.show(form, false);
      QT.show(document.getElementById("rate-error"), false);
    }, function (err) {
      btn.disabled = false;
      var bad = document.getElementById("rate-error");
      bad.textContent = err.code === "already_rated" ? QT.t("svc_rated") : QT.errorText(err);
      QT.show(bad, true);
    });
  });
}());
