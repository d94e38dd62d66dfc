/* The service worker of Web Push (push.js registers it): shows each notice the server pushes,
   and a tap opens (or focuses) the patient's ticket page. Links stay on this site. */
"use strict";
self.addEventListener("push", function (event) {
  var msg = {};
  try { msg = event.data ? event.data.json() : {}; } catch (e) { msg = { body: event.data ? event.data.text() : "" }; }
  var urgent = msg.tag === "called" || msg.tag === "recalled";
  event.waitUntil(self.registration.showNotification(msg.title || "", {
    body: msg.body || "", tag: msg.tag || "qtraq", renotify: true, requireInteraction: urgent,
    vibrate: urgent ? [400, 150, 400, 150, 400] : [200], data: { url: msg.url || "/" }
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var target = new URL((event.notification.data && event.notification.data.url) || "/", self.location.origin);
  if (target.origin !== self.location.origin) { target = new URL("/", self.location.origin); }
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (open) {
    for (var i = 0; i < open.length; i++) {
      if (open[i].url === target.href && "focus" in open[i]) { return open[i].focus(); }
    }
    return self.clients.openWindow(target.href);
  }));
});
