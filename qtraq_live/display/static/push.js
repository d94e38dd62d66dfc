/* Web Push on the patient's ticket page: a button that allows notifications on this phone, so
   "3 ahead" and "your turn" arrive even with the page closed. The browser's subscription goes to
   POST /api/v1/t/{token}/push; push_sw.js shows what arrives. Nothing appears where the browser
   cannot push, the server has Web Push off, or the ticket has left the queue. */
"use strict";
(function () {
  var QT = window.QT, d = QT.data;
  var FINAL = ["done", "cancelled", "no_show"];
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) { return; }
  var actions = document.querySelector(".p-actions");
  if (!actions || !d.api_path || !d.ticket || FINAL.indexOf(d.ticket.status) >= 0) { return; }

  var btn = document.createElement("button"), note = document.createElement("p");
  btn.type = "button"; btn.className = "secondary"; btn.id = "p-push"; btn.hidden = true;
  btn.textContent = QT.t("push_allow");
  note.id = "p-push-state"; note.className = "p-note muted"; note.setAttribute("role", "status"); note.hidden = true;
  actions.insertBefore(btn, actions.firstChild);  // first: the free way to be told
  actions.parentNode.insertBefore(note, actions.nextSibling);

  function keyBytes(b64url) {
    var s = b64url.replace(/-/g, "+").replace(/_/g, "/"), raw = atob(s + "===".slice((s.length + 3) % 4));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }

  function say(text) { note.textContent = text; note.hidden = false; btn.hidden = true; }

  function subscribe(key) {
    return navigator.serviceWorker.register("/static/push_sw.js").then(function (reg) {
      return navigator.serviceWorker.ready.then(function () { return reg.pushManager.getSubscription(); })
        .then(function (sub) {
          return sub || reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
        });
    }).then(function (sub) { return QT.api("POST", d.api_path + "/push", sub.toJSON()); });
  }

  function failed(err) {
    btn.disabled = false; btn.hidden = false;
    note.textContent = err && err.status !== undefined ? QT.errorText(err) : QT.t("push_failed");
    note.hidden = false;
  }

  QT.api("GET", "/api/v1/push/key").then(function (res) {
    if (Notification.permission === "denied") { say(QT.t("push_blocked")); return; }
    if (Notification.permission === "granted") {  // allowed before: renew the subscription quietly
      subscribe(res.public_key).then(function () { say(QT.t("push_on")); }, failed);
      return;
    }
    btn.hidden = false;
    btn.addEventListener("click", function () {
      btn.disabled = true;
      Notification.requestPermission().then(function (answer) {
        if (answer !== "granted") { say(QT.t("push_blocked")); return null; }
        return subscribe(res.public_key).then(function () { say(QT.t("push_on")); });
      }).catch(failed);
    });
  }, function () { /* Web Push is off on this server: no button */ });
})();
