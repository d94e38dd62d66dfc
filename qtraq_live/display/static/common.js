/* Shared helpers for every page: page data, strings, REST calls with CSRF, a resuming
   WebSocket, chime, speech, clock. Plain ES2017, no build step, no globals but window.QT. */
"use strict";
(function () {
  var node = document.getElementById("qt-data");
  var data = node ? JSON.parse(node.textContent) : {};
  var csrf = data.csrf || null;

  var plurals = null;
  try { plurals = new Intl.PluralRules(data.locale || data.lang || "en"); } catch (e) { plurals = null; }

  /* A plural entry is a list of forms ["one", "other"], picked by the count: params.n, else
     the only parameter (the server's i18n.translator applies the same CLDR rule). */
  function pluralForm(forms, params) {
    var names = params ? Object.keys(params) : [];
    var n = Number(params && ("n" in params ? params.n : names.length === 1 ? params[names[0]] : 0));
    var one = plurals ? plurals.select(n) === "one" : n === 1;
    return forms[Math.min(one ? 0 : 1, forms.length - 1)];
  }

  function t(key, params) {
    var s = (data.t && data.t[key]) || key;
    if (Array.isArray(s)) { s = pluralForm(s, params); }
    if (params) {
      Object.keys(params).forEach(function (k) { s = s.split("{" + k + "}").join(String(params[k])); });
    }
    return s;
  }

  function randomKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  /* fetch JSON; a non-2xx answer rejects with {status, code, message, retryAfter}. */
  function api(method, url, body, opts) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    if (csrf && method !== "GET") { headers["X-CSRF-Token"] = csrf; }
    if (opts && opts.idempotencyKey) { headers["Idempotency-Key"] = opts.idempotencyKey; }
    return fetch(url, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (res) {
      return res.text().then(function (text) {
        var payload = null;
        try { payload = text ? JSON.parse(text) : null; } catch (e) { payload = null; }
        if (!res.ok) {
          var err = (payload && payload.error) || {};
          var field = /^([\w.\[\]-]+): /.exec(err.message || "");  // "mobile: must be …" names its field
          return Promise.reject({ status: res.status, code: err.code || "error", field: field ? field[1] : null,
            message: err.message || res.statusText, retryAfter: res.headers.get("Retry-After") });
        }
        return payload;
      });
    }, function () {
      return Promise.reject({ status: 0, code: "network", message: t("error_network") });
    });
  }

  function errorText(err) {
    if (!err || err.status === 0) { return t("error_network"); }
    if (err.status === 429) { return t("error_rate_limited", { s: err.retryAfter || 60 }); }
    if (err.status === 401) { return t("error_login_needed"); }
    if (err.status === 403) { return t("error_forbidden"); }
    /* A person reads a sentence of the catalogue in the page's language, never an API code or
       the API's English: the field's own sentence, else the error code's, else a general one. */
    var strings = data.t || {};
    if (err.field && strings["err_field_" + err.field]) { return t("err_field_" + err.field); }
    if (strings["err_" + err.code]) { return t("err_" + err.code); }
    return t("error_generic");
  }

  /* Show an API error next to the form field it is about (the control named like the error's
     field); returns false when the form has no such field, so the caller shows it elsewhere. */
  function fieldError(form, err) {
    var input = err && err.field && form.elements ? form.elements[err.field] : null;
    if (!input || !input.tagName) { return false; }
    if (!input.id) { input.id = (form.id || "form") + "-" + err.field; }
    var id = input.id + "-error", p = document.getElementById(id);
    if (!p) {
      p = document.createElement("p");
      p.id = id;
      p.className = "field-error";
      p.setAttribute("role", "alert");
      input.insertAdjacentElement("afterend", p);
      input.addEventListener("input", function () {
        p.hidden = true;
        input.removeAttribute("aria-invalid");
      });
    }
    p.textContent = errorText(err);
    p.hidden = false;
    input.setAttribute("aria-invalid", "true");
    var described = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (x) { return x && x !== id; });
    input.setAttribute("aria-describedby", described.concat([id]).join(" "));
    input.focus();
    return true;
  }

  /* A WebSocket that reconnects with backoff and resumes with ?since=<last version>.
     on.message(msg), on.state("open"|"closed", code); on.stop(code) true = give up. */
  function socket(path, on) {
    var ws = null, version = null, attempt = 0, timer = null, stopped = false;
    function url() {
      var u = new URL(path, location.href);
      u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      if (version !== null) { u.searchParams.set("since", String(version)); }
      return u.toString();
    }
    function connect() {
      timer = null;
      ws = new WebSocket(url());
      ws.onopen = function () { attempt = 0; if (on.state) { on.state("open"); } };
      ws.onmessage = function (ev) {
        var msg;
        try { msg = JSON.parse(ev.data); } catch (e) { return; }
        if ((msg.type === "snapshot" || msg.type === "update") && typeof msg.version === "number") {
          version = msg.version;
        }
        on.message(msg);
      };
      ws.onclose = function (ev) {
        ws = null;
        if (stopped) { return; }
        if (on.state) { on.state("closed", ev.code); }
        if (on.stop && on.stop(ev.code)) { stopped = true; return; }
        var base = ev.code === 4401 ? 30000 : Math.min(10000, 500 * Math.pow(2, attempt));
        attempt += 1;
        timer = setTimeout(connect, base * (0.75 + Math.random() * 0.5));
      };
    }
    window.addEventListener("online", function () {
      if (!stopped && ws === null && timer !== null) { clearTimeout(timer); connect(); }
    });
    connect();
    return {
      close: function () { stopped = true; if (timer) { clearTimeout(timer); } if (ws) { ws.close(1000); } },
      version: function () { return version; }
    };
  }

  var audio = null;
  function audioContext() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!audio && Ctx) { audio = new Ctx(); }
    return audio;
  }
  /* Two soft tones made on the spot: no audio file to download. */
  function chime() {
    var ctx = audioContext();
    if (!ctx) { return; }
    if (ctx.state === "suspended") { ctx.resume().catch(function () {}); }
    var now = ctx.currentTime;
    [[880, 0], [660, 0.4]].forEach(function (tone) {
      var osc = ctx.createOscillator(), gain = ctx.createGain(), at = now + tone[1];
      osc.type = "sine";
      osc.frequency.value = tone[0];
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.5, at + 0.03);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.7);
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start(at);
      osc.stop(at + 0.75);
    });
  }
  function soundBlocked() { var ctx = audioContext(); return !!ctx && ctx.state === "suspended"; }

  function speak(text, tag) {
    if (!("speechSynthesis" in window)) { return; }
    var u = new SpeechSynthesisUtterance(text);
    u.lang = tag;
    var prefix = tag.slice(0, 2);
    var voices = window.speechSynthesis.getVoices().filter(function (v) { return v.lang.slice(0, 2) === prefix; });
    var exact = voices.filter(function (v) { return v.lang === tag; });
    if (exact.length || voices.length) { u.voice = (exact.length ? exact : voices)[0]; }
    u.rate = 0.9;
    window.speechSynthesis.speak(u);
  }

  function minutes(seconds) {
    if (seconds === null || seconds === undefined) { return "–"; }
    var m = Math.round(seconds / 60);
    return m < 1 ? t("under_minute") : t("minutes", { n: m });
  }

  // The wait as a range ("about 25–40 min"), or one figure when both ends round alike.
  function waitRange(low, high) {
    if (low === null || low === undefined || high === null || high === undefined) { return "–"; }
    var lo = Math.max(1, Math.round(low / 60)), hi = Math.max(1, Math.round(high / 60));
    if (high < 30) { return t("under_minute"); }
    return lo >= hi ? t("minutes", { n: hi }) : t("eta_range", { low: lo, high: hi });
  }

  function where(counter) {
    if (!counter) { return ""; }
    return /^\d+$/.test(counter) ? t("counter_n", { n: counter }) : counter;
  }

  function clock(el, timeZone) {
    var fmt;
    try {
      fmt = new Intl.DateTimeFormat(data.locale || "en-IN",
        { hour: "2-digit", minute: "2-digit", timeZone: timeZone || undefined });
    } catch (e) {
      fmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
    }
    function tick() {
      var now = new Date();
      el.textContent = fmt.format(now);
      el.setAttribute("datetime", now.toISOString());
      setTimeout(tick, 1000 - now.getMilliseconds() + 5);
    }
    tick();
  }

  function show(el, on) { if (el) { el.hidden = !on; } }

  /* Staff login form (reception and admin when signed out): a cookie session, then reload. */
  function bindLogin() {
    var form = document.getElementById("login-form");
    if (!form) { return; }
    var msg = document.getElementById("login-error");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      api("POST", "/api/v1/auth/login", { username: form.username.value, password: form.password.value })
        .then(function () { location.reload(); }, function (err) {
          btn.disabled = false;
          msg.textContent = err.status === 401 ? t("login_failed") : errorText(err);
          show(msg, true);
        });
    });
  }

  function bindLogout() {
    var btn = document.getElementById("logout");
    if (!btn) { return; }
    btn.addEventListener("click", function () {
      api("POST", "/api/v1/auth/logout", {}).then(function () { location.reload(); },
        function () { location.reload(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { bindLogin(); bindLogout(); });

  window.QT = {
    data: data, t: t, api: api, errorText: errorText, fieldError: fieldError, randomKey: randomKey, socket: socket,
    chime: chime, soundBlocked: soundBlocked, audioContext: audioContext, speak: speak,
    minutes: minutes, waitRange: waitRange, where: where, clock: clock, show: show
  };
})();
