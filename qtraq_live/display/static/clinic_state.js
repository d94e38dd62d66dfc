/* A clinic's queues as the display and reception sockets describe them (docs/fanout.md):
   a snapshot replaces the state; an update replaces the touched queue headers and moves each
   touched ticket to where its status puts it. Shared by display.js and reception.js. */
"use strict";
(function () {
  function byKey(key) { return function (a, b) { return (a[key] || 0) - (b[key] || 0); }; }

  function ClinicState() { this.queues = []; this.recent = []; this.clinic = null; }

  ClinicState.prototype.queue = function (id) {
    return this.queues.find(function (q) { return q.id === id; }) || null;
  };

  ClinicState.prototype.snapshot = function (msg) {
    this.clinic = msg.clinic || this.clinic;
    this.queues = msg.queues || [];
    var seen = {};  // a recall repeats a label: keep its newest call only
    this.recent = (msg.recent || []).filter(function (r) {
      if (seen[r.label]) { return false; }
      seen[r.label] = true;
      return true;
    }).slice(0, 10);
  };

  ClinicState.prototype.update = function (msg) {
    var queues = this.queues;
    (msg.queues || []).forEach(function (h) {
      var q = queues.find(function (x) { return x.id === h.id; });
      if (q) { Object.assign(q, h); } else { queues.push(Object.assign({ now_serving: [], waiting: [] }, h)); }
    });
    (msg.tickets || []).forEach(function (e) {
      queues.forEach(function (q) {
        q.waiting = (q.waiting || []).filter(function (x) { return x.id !== e.id; });
        q.now_serving = (q.now_serving || []).filter(function (x) { return x.id !== e.id; });
      });
      var q = queues.find(function (x) { return x.id === e.queue; });
      if (!q) { return; }
      if (e.status === "waiting") { q.waiting.push(e); q.waiting.sort(byKey("order")); }
      else if (e.status === "called" || e.status === "serving") { q.now_serving.push(e); q.now_serving.sort(byKey("called_at")); }
    });
    if (msg.call) { this.addRecent(msg.call); }
  };

  ClinicState.prototype.addRecent = function (c) {
    this.recent = [{ label: c.label, counter: c.counter, queue: c.queue }].concat(
      this.recent.filter(function (r) { return r.label !== c.label; })).slice(0, 10);
  };

  window.QT.ClinicState = ClinicState;
})();
