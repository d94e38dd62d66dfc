/* The admin page's queue settings (templates/_admin_queue.html): edit a queue's name, prefix,
   service time and notice threshold; close (pause) or open it; archive or restore it; set up
   its appointment slots or go back to appointments by date only. Errors show next to their
   field, in the page's language. */
"use strict";
(function () {
  var QT = window.QT;
  var msg = document.getElementById("a-msg");

  function say(text, bad) { msg.textContent = text; msg.classList.toggle("error", !!bad); msg.classList.toggle("ok", !bad); }
  function fail(form) { return function (err) { if (!(form && QT.fieldError(form, err))) { say(QT.errorText(err), true); } }; }
  function queueUrl(id) { return "/api/v1/queues/" + encodeURIComponent(id); }
  function numbers(form, names) {
    var out = {};
    names.forEach(function (n) { out[n] = Number(form.elements[n].value); });
    return out;
  }

  document.querySelectorAll(".a-queue-edit").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = numbers(form, ["avg_service_s", "notify_ahead"]);
      body.name = form.elements.name.value.trim();
      body.prefix = form.elements.prefix.value.trim().toUpperCase();
      QT.api("PATCH", queueUrl(form.dataset.queue), body).then(function () { say(QT.t("saved")); }, fail(form));
    });
  });

  document.querySelectorAll(".a-queue-slots").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = numbers(form, ["slot_minutes", "capacity", "grace_minutes"]);
      body.opens = form.elements.opens.value;
      body.closes = form.elements.closes.value;
      body.order_policy = form.elements.order_policy.value;
      QT.api("PUT", queueUrl(form.dataset.queue) + "/slots", body).then(function () { location.reload(); }, fail(form));
    });
  });

  function onClick(selector, handler) {
    document.querySelectorAll(selector).forEach(function (b) { b.addEventListener("click", function () { handler(b); }); });
  }
  onClick(".a-queue-noslots", function (b) {
    QT.api("DELETE", queueUrl(b.dataset.queue) + "/slots").then(function () { location.reload(); }, fail(null));
  });
  onClick(".a-queue-pause", function (b) {
    QT.api("POST", queueUrl(b.dataset.queue) + (b.dataset.paused ? "/resume" : "/pause"), {})
      .then(function () { location.reload(); }, fail(null));
  });
  onClick(".a-queue-archive", function (b) {
    QT.api("PATCH", queueUrl(b.dataset.queue), { archived: !b.dataset.archived })
      .then(function () { location.reload(); }, fail(null));
  });
})();
