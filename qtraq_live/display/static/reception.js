/* The reception console: pick clinic/queue/counter, call the next patient, recall, skip,
   finish, transfer, pause; issue walk-in tickets and check appointments in; the waiting list
   stays live through /ws/reception/{clinic}, whoever acts. */
"use strict";
(function () {
  var QT = window.QT, d = QT.data;
  var $ = function (id) { return document.getElementById(id); };
  var state = new QT.ClinicState(), sock = null, busy = false, lastIssued = null;
  var sel = { clinic: $("r-clinic"), queue: $("r-queue"), counter: $("r-counter"), transfer: $("r-transfer") };
  var stored = {};
  try { stored = JSON.parse(localStorage.getItem("qt-reception") || "{}"); } catch (e) { stored = {}; }

  function option(select, value, text) {
    var o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    select.appendChild(o);
  }

  function clinicDef(id) { return d.clinics.find(function (c) { return c.id === id; }) || d.clinics[0]; }

  function fillQueues(queueId) {
    var c = clinicDef(sel.clinic.value);
    sel.queue.textContent = "";
    sel.transfer.textContent = "";
    (c ? c.queues : []).forEach(function (q) { option(sel.queue, q.id, q.name); option(sel.transfer, q.id, q.name); });
    if (queueId && c && c.queues.some(function (q) { return q.id === queueId; })) { sel.queue.value = queueId; }
    pickTransferTarget();
  }

  /* The transfer target defaults to another queue than the one being served. */
  function pickTransferTarget() {
    var other = Array.prototype.find.call(sel.transfer.options, function (o) { return o.value !== sel.queue.value; });
    if (other && sel.transfer.value === sel.queue.value) { sel.transfer.value = other.value; }
  }

  function remember() {
    var v = { clinic: sel.clinic.value, queue: sel.queue.value, counter: sel.counter.value };
    try { localStorage.setItem("qt-reception", JSON.stringify(v)); } catch (e) { /* private mode */ }
    var u = new URL(location.href);
    u.searchParams.set("queue", v.queue);
    u.searchParams.set("counter", v.counter);
    history.replaceState(null, "", u.toString());
  }

  function say(text, bad) {
    var m = $("r-msg");
    m.textContent = text;
    m.classList.toggle("error", !!bad);
  }

  function queue() { return state.queue(sel.queue.value); }

  function current() {
    var q = queue(), counter = sel.counter.value;
    if (!q) { return null; }
    return (q.now_serving || []).filter(function (t) { return t.counter === counter; }).pop() || null;
  }

  function waited(iso) {
    if (!iso) { return "–"; }
    return QT.minutes((Date.now() - Date.parse(iso)) / 1000);
  }

  function render() {
    var q = queue(), cur = current();
    var def = (clinicDef(sel.clinic.value) || { queues: [] }).queues.find(function (x) { return x.id === sel.queue.value; });
    $("r-qr").href = "/join/" + encodeURIComponent(sel.queue.value) + "/qr";
    QT.show($("r-qr"), !!(def && def.self_checkin));
    $("r-counter-name").textContent = QT.where(sel.counter.value);
    $("r-current").textContent = cur ? cur.label : "—";
    $("r-current-name").textContent = cur ? (cur.name || "") : "";
    ["b-recall", "b-skip", "b-done", "b-transfer"].forEach(function (id) { $(id).disabled = busy || !cur; });
    $("b-next").disabled = busy || !q || !!q.paused;
    $("b-pause").textContent = q && q.paused ? QT.t("resume") : QT.t("pause");
    QT.show($("r-paused"), !!(q && q.paused));
    var waiting = q ? q.waiting || [] : [];
    $("r-count").textContent = "(" + waiting.length + ")";
    var body = $("r-waiting");
    body.textContent = "";
    waiting.forEach(function (t, i) {
      var tr = document.createElement("tr");
      [String(i + 1), t.label + (t.priority ? " ★" : "") + (t.source && t.source !== "reception" ? " · " + QT.t("source_" + t.source) : ""), t.name || "", waited(t.created_at)].forEach(function (text) {
        var td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      if (t.priority) { tr.className = "urgent"; }
      body.appendChild(tr);
    });
    var serving = $("r-serving");
    serving.textContent = "";
    (q ? q.now_serving || [] : []).forEach(function (t) {
      var li = document.createElement("li");
      li.textContent = t.label + " · " + QT.where(t.counter) + (t.status === "serving" ? " · " + QT.t("status_serving") : "");
      serving.appendChild(li);
    });
  }

  function connect() {
    if (sock) { sock.close(); }
    state = new QT.ClinicState();
    render();
    sock = QT.socket("/ws/reception/" + encodeURIComponent(sel.clinic.value), {
      message: function (msg) {
        if (msg.type === "snapshot" || msg.type === "update") { state[msg.type](msg); render(); }
      },
      state: function (s, code) {
        document.body.dataset.socket = s;
        QT.show($("r-conn"), s !== "open");
        if (code === 4401) { location.reload(); }
      }
    });
  }

  /* One press = one request: the button stays disabled while it is in flight, and the
     Idempotency-Key makes a retried request call one patient only. */
  function act(method, url, body, done, idem) {
    if (busy) { return; }
    busy = true;
    render();
    var key = idem ? QT.randomKey() : null;
    var attempt = function (retry) {
      return QT.api(method, url, body, key ? { idempotencyKey: key } : undefined).catch(function (err) {
        if (err.status === 0 && retry && key) { return new Promise(function (r) { setTimeout(r, 800); }).then(function () { return attempt(false); }); }
        throw err;
      });
    };
    attempt(true).then(function (res) { busy = false; render(); done(res); },
      function (err) { busy = false; render(); say(QT.errorText(err), true); });
  }

  function ticketAction(action) {
    var cur = current();
    if (!cur) { return; }
    act("POST", "/api/v1/tickets/" + cur.id + "/" + action, {}, function () {
      say(QT.t("did_" + action.replace("-", "_"), { label: cur.label }));
    });
  }

  function next() {
    act("POST", "/api/v1/queues/" + encodeURIComponent(sel.queue.value) + "/next", { counter: sel.counter.value },
      function (res) { say(res && res.called ? QT.t("did_next", { label: res.called.label }) : QT.t("nobody_waiting")); }, true);
  }

  function transfer() {
    var cur = current(), to = sel.transfer.value;
    if (!cur || !to || to === sel.queue.value) { sel.transfer.focus(); return; }
    act("POST", "/api/v1/tickets/" + cur.id + "/transfer", { queue: to }, function () {
      say(QT.t("did_transfer", { label: cur.label }));
    });
  }

  function pauseResume() {
    var q = queue();
    if (!q) { return; }
    act("POST", "/api/v1/queues/" + encodeURIComponent(q.id) + (q.paused ? "/resume" : "/pause"), {}, function () {});
  }

  function issued(res) {
    lastIssued = res.ticket;
    $("r-issued-label").textContent = QT.t("did_issue", { label: res.ticket.label });
    QT.show($("r-issued"), true);
  }

  function printLast() {
    if (!lastIssued) { return; }
    $("print-frame").src = "/tickets/" + lastIssued.id + "/print?autoprint=1&width=" + (d.print_width || 80);
  }

  $("issue-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target, body = { priority: f.urgent.checked ? 1 : 0, notify: f.notify.checked };
    if (f.name.value.trim()) { body.name = f.name.value.trim(); }
    if (f.mobile.value.trim()) { body.mobile = f.mobile.value.replace(/[\s-]/g, ""); }
    act("POST", "/api/v1/queues/" + encodeURIComponent(sel.queue.value) + "/tickets", body, function (res) {
      f.reset();
      issued(res);
    });
  });

  $("checkin-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var id = ev.target.appointment.value.trim();
    if (!/^\d+$/.test(id)) { say(QT.t("appointment_id_needed"), true); return; }
    act("POST", "/api/v1/appointments/" + id + "/check-in", {}, function (res) { ev.target.reset(); issued(res); });
  });

  $("b-next").addEventListener("click", next);
  $("b-recall").addEventListener("click", function () { ticketAction("recall"); });
  $("b-skip").addEventListener("click", function () { ticketAction("skip"); });
  $("b-done").addEventListener("click", function () { ticketAction("done"); });
  $("b-transfer").addEventListener("click", transfer);
  $("b-pause").addEventListener("click", pauseResume);
  $("b-print").addEventListener("click", printLast);

  var KEYS = { n: next, r: function () { ticketAction("recall"); }, s: function () { ticketAction("skip"); },
    d: function () { ticketAction("done"); }, t: transfer, p: printLast };
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) { return; }
    var tag = ev.target && ev.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || (ev.target && ev.target.isContentEditable)) { return; }
    var fn = KEYS[ev.key.toLowerCase()];
    if (fn) { ev.preventDefault(); fn(); }
  });

  sel.clinic.addEventListener("change", function () { fillQueues(null); remember(); connect(); });
  sel.queue.addEventListener("change", function () { pickTransferTarget(); remember(); render(); });
  sel.counter.addEventListener("change", function () { remember(); render(); });
  setInterval(render, 30000);  // the "waited" column

  d.clinics.forEach(function (c) { option(sel.clinic, c.id, c.name); });
  var want = d.preselect.queue || stored.queue;
  var owner = d.clinics.find(function (c) { return c.queues.some(function (q) { return q.id === want; }); });
  sel.clinic.value = owner ? owner.id : (stored.clinic || (d.clinics[0] && d.clinics[0].id) || "");
  fillQueues(want);
  sel.counter.value = d.preselect.counter || stored.counter || "1";
  if (sel.clinic.value) { remember(); connect(); } else { say(QT.t("no_clinics"), true); }
})();
