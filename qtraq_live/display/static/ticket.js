/* The patient's phone: live position and ETA from /ws/t/{token}, an alert when called, and
   "leave the queue" with a confirmation. No names, no other patients: the socket sends none. */
"use strict";
(function () {
  var QT = window.QT, d = QT.data, ticket = d.ticket;
  var $ = function (id) { return document.getElementById(id); };
  var FINAL = ["done", "cancelled"];
  var lastAlert = 0, sock = null;

  function statusText(tk) {
    var text = QT.t("status_" + tk.status);
    return tk.status === "called" && tk.counter ? text + " " + QT.t("go_to", { where: QT.where(tk.counter) }) : text;
  }

  function render() {
    $("p-card").dataset.status = ticket.status;
    $("p-status").textContent = statusText(ticket);
    var waiting = ticket.status === "waiting";
    QT.show($("p-facts"), waiting);
    if (waiting) {
      $("p-position").textContent = ticket.position === null ? "–" : String(ticket.position);
      $("p-ahead").textContent = ticket.ahead === null ? "–" : String(ticket.ahead);
      $("p-eta").textContent = QT.waitRange(ticket.eta_low_s, ticket.eta_high_s);
    }
    QT.show($("leave"), d.leavable.indexOf(ticket.status) >= 0);
    QT.show($("p-sound"), FINAL.indexOf(ticket.status) < 0 && !soundOn());
    document.title = (ticket.status === "called" ? "▶ " : "") + ticket.label + " · " + QT.t("ticket_title");
  }

  function soundOn() { var ctx = QT.audioContext(); return !!ctx && ctx.state === "running"; }

  function alertCalled() {
    var now = Date.now();
    if (now - lastAlert < 3000) { return; }
    lastAlert = now;
    if (navigator.vibrate) { navigator.vibrate([400, 150, 400, 150, 400]); }
    if (soundOn()) { QT.chime(); }
  }

  function apply(fields) {
    var before = ticket.status;
    Object.keys(fields).forEach(function (k) { if (k !== "type" && k !== "version") { ticket[k] = fields[k]; } });
    render();
    if (ticket.status === "called" && before !== "called") { alertCalled(); }
    if (FINAL.indexOf(ticket.status) >= 0 && sock) { sock.close(); sock = null; }
  }

  function leave() {
    var btn = $("leave");
    btn.disabled = true;
    QT.api("DELETE", d.api_path).then(function (res) {
      btn.disabled = false;
      apply(res && res.status ? res : { status: "cancelled" });
    }, function (err) {
      btn.disabled = false;
      if (err.status === 409) { apply({ status: "cancelled" }); return; }
      $("p-error").textContent = QT.errorText(err);
      QT.show($("p-error"), true);
    });
  }

  $("leave").addEventListener("click", function () { $("leave-dialog").showModal(); });
  $("leave-dialog").addEventListener("close", function () {
    if ($("leave-dialog").returnValue === "confirm") { leave(); }
  });
  $("p-sound").addEventListener("click", function () {
    var ctx = QT.audioContext();
    if (ctx) { ctx.resume().then(function () { QT.chime(); render(); }); }
    if (navigator.vibrate) { navigator.vibrate(100); }
  });

  render();
  if (FINAL.indexOf(ticket.status) < 0) {
    sock = QT.socket(d.ws_path, {
      message: function (msg) {
        if (msg.type === "snapshot" || msg.type === "update") { apply(msg); }
        else if (msg.type === "call") {
          var was = ticket.status;  // a recall repeats the alert
          lastAlert = 0;
          apply({ status: "called", counter: msg.counter || ticket.counter });
          if (was === "called") { alertCalled(); }
        }
      },
      state: function (state) { QT.show($("p-conn"), state !== "open"); },
      stop: function (code) { return code === 4404; }
    });
  }
})();
