/* The waiting-room TV: queue cards from the display socket, a prominent call with chime and
   speech, a clock, a reconnect badge, and one quiet reload a day to shed leaks. */
"use strict";
(function () {
  var QT = window.QT, d = QT.data;
  var state = new QT.ClinicState();
  var calls = [];           // calls waiting to be shown, oldest first
  var MAX_PENDING_CALLS = 5;
  var showing = false;
  var $ = function (id) { return document.getElementById(id); };

  function fill(list, items, make) {
    list.textContent = "";
    items.forEach(function (item) { list.appendChild(make(item)); });
  }

  function servingItem(x) {
    var li = document.createElement("li"), big = document.createElement("span");
    big.className = "d-label";
    big.textContent = x.label;
    li.appendChild(big);
    if (x.counter) {
      var at = document.createElement("span");
      at.className = "d-at";
      at.textContent = QT.where(x.counter);
      li.appendChild(at);
    }
    if (x.name) {
      var nm = document.createElement("span");
      nm.className = "d-name";
      nm.textContent = x.name;
      li.appendChild(nm);
    }
    return li;
  }

  function textItem(text) {
    var li = document.createElement("li");
    li.textContent = text;
    return li;
  }

  function noneItem() {
    var li = textItem(QT.t("nobody_waiting"));
    li.className = "d-none";
    return li;
  }

  /* The queues this screen shows: ?queues=a,b in that order, else all. */
  function shownQueues() {
    var open = function (q) { return q && !q.archived; };
    if (!d.queues || !d.queues.length) { return state.queues.filter(open); }
    return d.queues.map(function (id) { return state.queue(id); }).filter(open);
  }

  /* A counter that has called nobody for a while is not "serving" that patient any more. */
  function stillServing(x) {
    return !d.serving_clear_ms || !x.called_at || Date.now() - x.called_at < d.serving_clear_ms;
  }

  function renderQueues() {
    var box = $("queues"), tpl = $("queue-tpl"), shown = shownQueues();
    box.textContent = "";
    box.dataset.count = String(shown.length);
    shown.forEach(function (q) {
      var card = tpl.content.firstElementChild.cloneNode(true);
      card.dataset.queue = q.id;
      card.querySelector(".d-q-name").textContent = q.name;
      QT.show(card.querySelector(".d-q-paused"), !!q.paused);
      var serving = (q.now_serving || []).filter(stillServing);
      fill(card.querySelector(".d-serving"), serving.length ? serving : [{ label: "—" }], servingItem);
      var next = (q.waiting || []).slice(0, d.next_count || 4).map(function (x) { return x.label; });
      fill(card.querySelector(".d-next"), next.length ? next : [null], next.length ? textItem : noneItem);
      card.querySelector(".d-q-wait").textContent = typeof q.avg_wait_s === "number"
        ? QT.t("average_wait", { wait: QT.minutes(q.avg_wait_s) }) : "";
      box.appendChild(card);
    });
  }

  function queueName(id) { var q = state.queue(id); return q ? q.name : ""; }

  function renderRecent() {
    var mine = d.queues && d.queues.length ? state.recent.filter(function (r) { return d.queues.indexOf(r.queue) >= 0; })
      : state.recent;
    fill($("recent"), mine.slice(0, d.recent_count || 5), function (r) {
      var li = document.createElement("li"), b = document.createElement("strong"), where = document.createElement("span");
      var at = document.createElement("span"), q = document.createElement("span");
      b.textContent = r.label;
      at.className = "d-r-at";
      at.textContent = QT.where(r.counter);
      q.className = "d-r-queue";
      q.textContent = queueName(r.queue);
      where.appendChild(at);
      where.appendChild(q);
      li.appendChild(b);
      li.appendChild(where);
      return li;
    });
  }

  /* "A-012" is read out character by character: "A 0 1 2". */
  function spoken(text) { return String(text).replace(/-/g, " ").split("").join(" ").replace(/\s+/g, " "); }

  function nextCall() {
    if (showing || !calls.length) { return; }
    var c = calls.shift(), box = $("call");
    showing = true;
    $("call-label").textContent = c.label;
    $("call-where").textContent = [QT.where(c.counter), queueName(c.queue)].filter(Boolean).join(" · ");
    box.dataset.label = c.label;
    QT.show(box, true);
    if (window.QTSpeech) { window.QTSpeech.announce(c); } else { QT.chime(); }  // speech.js: chime, then clips
    setTimeout(function () {
      if (window.QTSpeech) { return; }  // it speaks the call itself, in the clinic's languages
      QT.speak(QT.t("call_speech", { label: spoken(c.label), where: QT.where(c.counter) || queueName(c.queue) }),
        d.speech_lang || "en-IN");
    }, 900);
    setTimeout(function () { QT.show(box, false); showing = false; nextCall(); }, d.call_ms || 8000);
  }

  function onCall(msg) {
    if (d.queues && d.queues.length && d.queues.indexOf(msg.queue) < 0) { return; }  // another screen's queue
    state.addRecent(msg);
    renderRecent();
    QT.board.fit();
    calls.push(msg);
    if (calls.length > MAX_PENDING_CALLS) { calls.shift(); }  // a burst: show the newest, not a backlog
    nextCall();
  }

  /* A board that has lost its server, or whose key was revoked, says so across the screen:
     the numbers on it are no longer true, and a waiting room must notice. */
  var downSince = null, frozenTimer = null;
  function freeze(text) {
    var banner = $("frozen");
    banner.textContent = text;
    QT.show(banner, true);
    document.body.dataset.frozen = "1";
  }
  function onState(state, code) {
    var badge = $("conn");
    badge.textContent = code === 4401 ? QT.t("display_key_invalid") : QT.t("reconnecting");
    if (badge.hidden !== (state === "open")) { QT.show(badge, state !== "open"); QT.board.fit(); }
    document.body.dataset.socket = state;
    if (state === "open") {
      downSince = null;
      clearTimeout(frozenTimer);
      QT.show($("frozen"), false);
      delete document.body.dataset.frozen;
      return;
    }
    if (code === 4401) { freeze(QT.t("display_frozen_key")); return; }
    if (downSince === null) {
      downSince = Date.now();
      frozenTimer = setTimeout(function () { freeze(QT.t("display_frozen")); }, d.frozen_after_ms || 20000);
    }
  }

  /* One reload a day, at a quiet hour of the night, never in the middle of a call. */
  function scheduleReload() {
    var at = new Date();
    at.setHours(d.reload_hour || 3, Math.floor(Math.random() * 30), 0, 0);
    if (at.getTime() <= Date.now() + 3600000) { at.setDate(at.getDate() + 1); }
    /* Reload only when the server answers: a reload while it is down would leave the kiosk on
       the browser's error page for good. */
    function tryReload() {
      if (showing) { setTimeout(tryReload, 60000); return; }
      fetch(location.href, { method: "HEAD", cache: "no-store" }).then(function (res) {
        if (res.ok) { location.reload(); } else { setTimeout(tryReload, 300000); }
      }, function () { setTimeout(tryReload, 300000); });
    }
    setTimeout(tryReload, at.getTime() - Date.now());
  }

  function soundHint() {
    var btn = $("sound");
    var check = function () {
      var was = !btn.hidden;
      QT.show(btn, QT.soundBlocked());
      if (was !== !btn.hidden) { QT.board.fit(); }  // the header's room changed
    };
    btn.addEventListener("click", function () { QT.audioContext().resume().then(check, check); });
    document.addEventListener("keydown", function () { QT.audioContext().resume().then(check, check); });
    setTimeout(check, 1500);
  }

  QT.clock($("clock"), d.timezone);
  QT.socket(d.ws_path, {
    message: function (msg) {
      QT.show($("loading"), false);
      if (msg.type === "snapshot" || msg.type === "update") {
        state[msg.type](msg);
        renderQueues();
        renderRecent();
        QT.board.fit();
      } else if (msg.type === "call") { onCall(msg); }
    },
    state: onState
  });
  scheduleReload();
  soundHint();
  setInterval(function () { if (state.queues.length) { renderQueues(); QT.board.fit(); } }, 30000);  // idle counters clear
  window.addEventListener("resize", function () { QT.board.fit(); });
})();
