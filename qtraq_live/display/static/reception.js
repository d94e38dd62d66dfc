/* The reception console: pick clinic/queue/counter, call the next patient, recall, skip,
   finish, mark a no-show, transfer, pause, close the counter; call any waiting patient out of order or cancel
   their ticket from their row; bring back today's skipped and no-show tickets; issue walk-in
   tickets. The lists stay live through /ws/reception/{clinic}?queues={the chosen queue}, whoever
   acts. A doctor's console (data.desk false) has only what a doctor may do. */
"use strict";
(function () {
  var QT = window.QT, d = QT.data;
  var $ = function (id) { return document.getElementById(id); };
  var state = new QT.ClinicState(), sock = null, busy = false, lastIssued = null;
  var aside = {};  // today's skipped and no-show tickets by id
  var SET_ASIDE = ["skipped", "no_show"];
  var sel = { clinic: $("r-clinic"), queue: $("r-queue"), counter: $("r-counter"),
    transfer: $("r-transfer") || document.createElement("select") };
  var on = function (id, event, fn) { var el = $(id); if (el) { el.addEventListener(event, fn); } };
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
    ["b-recall", "b-skip", "b-done", "b-noshow", "b-transfer"].forEach(function (id) { if ($(id)) { $(id).disabled = busy || !cur; } });
    $("b-next").disabled = busy || !q || !!q.paused;
    $("b-close").disabled = busy || !q;
    if ($("b-pause")) {
      $("b-pause").textContent = q && q.paused ? QT.t("resume") : QT.t("pause");
      QT.show($("r-paused"), !!(q && q.paused));
    }
    var waiting = q ? q.waiting || [] : [];
    $("r-count").textContent = "(" + waiting.length + ")";
    var body = $("r-waiting"), focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("#r-waiting tr") : null;
    var focusId = focused ? focused.dataset.id : null;
    body.textContent = "";
    waiting.forEach(function (t, i) {
      var tr = document.createElement("tr");
      [String(i + 1), t.label + (t.priority ? " ★" : "") + (t.source && t.source !== "reception" ? " · " + QT.t("source_" + t.source) : ""), t.name || "", waited(t.created_at)].forEach(function (text) {
        var td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      if (t.priority) { tr.className = "urgent"; }
      tr.dataset.id = String(t.id);
      tr.tabIndex = 0;
      tr.appendChild(rowActions(t));
      body.appendChild(tr);
      if (focusId === String(t.id)) { tr.focus(); }
    });
    renderAside();
    var serving = $("r-serving");
    serving.textContent = "";
    (q ? q.now_serving || [] : []).forEach(function (t) {
      var li = document.createElement("li");
      li.textContent = t.label + " · " + QT.where(t.counter) + (t.status === "serving" ? " · " + QT.t("status_serving") : "");
      serving.appendChild(li);
    });
  }

  /* -- each waiting row's own actions: call it to this counter now, cancel it (confirmed) -- */
  function rowButton(text, label, cls, fn) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.disabled = busy;
    b.addEventListener("click", fn);
    return b;
  }

  function rowActions(t) {
    var td = document.createElement("td");
    td.className = "r-row-actions";
    td.appendChild(rowButton(QT.t("row_call"), QT.t("row_call_label", { label: t.label }), "secondary r-call",
      function () { callTicket(t); }));
    if (d.desk) {
      var cancel = rowButton(QT.t("row_cancel"), QT.t("row_cancel_label", { label: t.label }), "secondary r-cancel",
        function () { confirmThen(cancel, function () { ticketStateChange(t, "cancel"); }); });
      td.appendChild(cancel);
    }
    return td;
  }

  /* A destructive button asks once more: the first press arms it for a few seconds. */
  function confirmThen(button, fn) {
    if (button.qtDisarm) { button.qtDisarm(); fn(); return; }
    var kept = Array.prototype.slice.call(button.childNodes);  // its text and <kbd> hint come back
    var timer = setTimeout(function () { button.qtDisarm(); }, 4000);
    button.qtDisarm = function () {
      clearTimeout(timer);
      delete button.qtDisarm;
      delete button.dataset.armed;
      button.textContent = "";
      kept.forEach(function (n) { button.appendChild(n); });
    };
    button.dataset.armed = "1";
    button.textContent = QT.t("row_confirm");
  }

  function callTicket(t) {
    act("POST", "/api/v1/tickets/" + t.id + "/call", { counter: sel.counter.value }, function () {
      say(QT.t("did_call", { label: t.label }));
    }, true);
  }

  function ticketStateChange(t, action) {
    act("POST", "/api/v1/tickets/" + t.id + "/" + action, {}, function () {
      say(QT.t("did_" + action.replace("-", "_"), { label: t.label }));
    });
  }

  /* Keyboard in the waiting list: arrows move between rows, C calls, X cancels (twice). */
  $("r-waiting").addEventListener("keydown", function (ev) {
    var tr = ev.target.closest && ev.target.closest("tr");
    if (!tr || ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) { return; }
    var key = ev.key.toLowerCase();
    if (key === "arrowdown" || key === "arrowup") {
      var to = key === "arrowdown" ? tr.nextElementSibling : tr.previousElementSibling;
      if (to) { to.focus(); }
      ev.preventDefault();
      ev.stopPropagation();
      return;
    }
    var button = key === "c" ? tr.querySelector(".r-call") : key === "x" ? tr.querySelector(".r-cancel") : null;
    if (button) { ev.preventDefault(); ev.stopPropagation(); button.click(); }
  });

  /* -- today's skipped and no-show tickets, to bring back --------------------------------- */
  function renderAside() {
    var list = $("r-aside"), queueId = sel.queue.value;
    list.textContent = "";
    Object.keys(aside).map(function (id) { return aside[id]; }).filter(function (t) { return t.queue === queueId; })
      .forEach(function (t) {
        var li = document.createElement("li"), text = document.createElement("span");
        text.textContent = [t.label, t.name || "", QT.t("aside_" + t.status)].filter(Boolean).join(" · ");
        li.appendChild(text);
        li.appendChild(rowButton(QT.t("row_call"), QT.t("row_call_label", { label: t.label }), "secondary r-call",
          function () { callTicket(t); }));
        if (d.desk) {
          li.appendChild(rowButton(QT.t("row_requeue"), QT.t("row_requeue") + " " + t.label, "secondary r-requeue",
            function () { ticketStateChange(t, "requeue"); }));
        }
        if (t.status === "skipped") {
          li.appendChild(rowButton(QT.t("row_no_show"), QT.t("row_no_show") + " " + t.label, "secondary r-noshow",
            function () { ticketStateChange(t, "no-show"); }));
        }
        list.appendChild(li);
      });
  }

  function noteAside(tickets) {
    (tickets || []).forEach(function (t) {
      if (SET_ASIDE.indexOf(t.status) >= 0) { aside[t.id] = t; } else { delete aside[t.id]; }
    });
  }

  function loadAside() {
    var clinic = sel.clinic.value;
    QT.api("GET", "/api/v1/clinics/" + encodeURIComponent(clinic) + "/set-aside").then(function (res) {
      if (clinic !== sel.clinic.value) { return; }
      (res.tickets || []).forEach(function (t) { if (!aside[t.id]) { aside[t.id] = t; } });
      render();
    }, function () { /* the live updates still fill the list */ });
  }

  function connect() {
    if (sock) { sock.close(); }
    state = new QT.ClinicState();
    aside = {};
    render();
    loadAside();
    /* only the queue this desk works on: a press in another department sends it nothing */
    sock = QT.socket("/ws/reception/" + encodeURIComponent(sel.clinic.value) +
      "?queues=" + encodeURIComponent(sel.queue.value), {
      message: function (msg) {
        if (msg.type === "update") { noteAside(msg.tickets); }
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
  function act(method, url, body, done, idem, form) {
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
      function (err) {
        busy = false;
        render();
        if (!(form && QT.fieldError(form, err))) { say(QT.errorText(err), true); }  // a field's error goes next to it
      });
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

  /* The counter closes (asked twice): its patient is done and the TV stops showing it. */
  function closeCounter() {
    var q = queue(), counter = sel.counter.value, button = $("b-close");
    if (!q || !counter) { return; }
    confirmThen(button, function () {
      act("POST", "/api/v1/queues/" + encodeURIComponent(q.id) + "/counters/" + encodeURIComponent(counter) + "/close",
        {}, function (res) {
          say(QT.t(res && res.closed ? "did_close_counter" : "counter_not_open", { where: QT.where(counter) }));
        });
    });
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

  on("issue-form", "submit", function (ev) {
    ev.preventDefault();
    var f = ev.target, body = { priority: f.urgent.checked ? 1 : 0, notify: f.notify.checked };
    if (f.name.value.trim()) { body.name = f.name.value.trim(); }
    if (f.mobile.value.trim()) { body.mobile = f.mobile.value.trim(); }  // read by the server as people type it
    act("POST", "/api/v1/queues/" + encodeURIComponent(sel.queue.value) + "/tickets", body, function (res) {
      f.reset();
      issued(res);
    }, false, f);
  });
  on("pick", "submit", function (ev) { ev.preventDefault(); });

  /* Appointments checked in from today's list (reception_appointments.js) print like walk-ins. */
  document.addEventListener("qt-issued", function (ev) { issued(ev.detail); });

  /* A double click is one press: its second click (detail 2) would call a second patient
     whenever the first answer came back between the two clicks. */
  $("b-next").addEventListener("click", function (ev) { if (ev.detail < 2) { next(); } });
  $("b-recall").addEventListener("click", function () { ticketAction("recall"); });
  $("b-skip").addEventListener("click", function () { ticketAction("skip"); });
  $("b-done").addEventListener("click", function () { ticketAction("done"); });
  $("b-noshow").addEventListener("click", function () { ticketAction("no-show"); });
  $("b-close").addEventListener("click", closeCounter);
  on("b-transfer", "click", transfer);
  on("b-pause", "click", pauseResume);
  on("b-print", "click", printLast);

  var KEYS = { n: next, r: function () { ticketAction("recall"); }, s: function () { ticketAction("skip"); },
    d: function () { ticketAction("done"); }, m: function () { ticketAction("no-show"); }, t: transfer, p: printLast,
    e: closeCounter };
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) { return; }
    var tag = ev.target && ev.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || (ev.target && ev.target.isContentEditable)) { return; }
    var fn = KEYS[ev.key.toLowerCase()];
    if (fn) { ev.preventDefault(); fn(); }
  });

  sel.clinic.addEventListener("change", function () { fillQueues(null); remember(); connect(); });
  sel.queue.addEventListener("change", function () { pickTransferTarget(); remember(); connect(); });
  QT.reception = { clinic: function () { return sel.clinic.value; }, queue: function () { return sel.queue.value; } };
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
