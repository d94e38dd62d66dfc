/* Spoken calls on the TV. Each call is said in each of the clinic's languages, in the clinic's
   order, by audio clips the server renders with espeak-ng (so it works offline, without the
   browser's voices): GET /api/v1/clinics/{clinic}/calls/{version}/audio?lang=xx&key=….
   Calls wait in line and are said one at a time, never two at once; a recall is a new call,
   said again. A clip that cannot play falls back to the browser's speech (in the page's
   language), and where there is none the chime alone has announced it.
   display.js hands each call to QTSpeech.announce(call). */
"use strict";
(function () {
  var QT = window.QT, d = QT.data;
  var m = /^\/ws\/display\/([^/?]+)\?key=([A-Za-z0-9_-]+)/.exec(d.ws_path || "");
  if (!m) { return; }
  var clinic = m[1], key = m[2];
  var MAX_WAITING = 10;   // a burst of presses: the oldest calls are dropped, never said late
  var CHIME_MS = 1300;  // the two tones end at 1.15 s: the first clip starts after them
  var CLIP_LIMIT_MS = 20000;  // a clip that never ends must not block the line
  var langs = ["en"], waiting = [], busy = false, log = [];

  var ready = QT.api("GET", "/api/v1/clinics/" + clinic + "/speech?key=" + key).then(function (res) {
    if (res && res.languages && res.languages.length) { langs = res.languages; }
  }, function () { /* keep English */ });  // calls wait for this, so the first is said in every language

  function pause(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function clip(call, lang) {
    var audio = new Audio("/api/v1/clinics/" + clinic + "/calls/" + call.version + "/audio?lang=" + lang + "&key=" + key);
    return new Promise(function (resolve) {
      var settled = false, timer = null;
      function done(ok) {
        if (settled) { return; }
        settled = true;
        clearTimeout(timer);
        audio.onended = audio.onerror = null;
        if (!ok) { audio.pause(); }
        resolve(ok);
      }
      audio.onended = function () { done(true); };
      audio.onerror = function () { done(false); };
      timer = setTimeout(function () { audio.pause(); done(true); }, CLIP_LIMIT_MS);
      var played = audio.play();
      if (played && played.catch) { played.catch(function () { done(false); }); }
    });
  }

  /* The browser's own voice, only in the page's language (its strings are the page's). */
  function browserVoice(call, lang) {
    if (lang !== d.lang || !("speechSynthesis" in window) || !window.speechSynthesis.getVoices().length) {
      return Promise.resolve(false);
    }
    return new Promise(function (resolve) {
      var u = new SpeechSynthesisUtterance(QT.t("call_speech", {
        label: String(call.label).replace(/-/g, " "), where: QT.where(call.counter) }));
      u.lang = d.speech_lang || "en-IN";
      u.onend = function () { resolve(true); };
      u.onerror = function () { resolve(false); };
      window.speechSynthesis.speak(u);
    });
  }

  function say(call, lang) {
    var entry = { version: call.version, label: call.label, lang: lang, how: "chime", start: performance.now(), end: 0 };
    return clip(call, lang).then(function (ok) {
      if (ok) { entry.how = "clip"; return true; }
      return browserVoice(call, lang).then(function (spoke) { if (spoke) { entry.how = "speech"; } });
    }).then(function () { entry.end = performance.now(); log.push(entry); });
  }

  function announceOne(call) {
    QT.chime();
    return pause(CHIME_MS).then(function () {
      return langs.reduce(function (chain, lang) {
        return chain.then(function () { return say(call, lang); });
      }, Promise.resolve());
    });
  }

  function next() {
    if (busy || !waiting.length) { return; }
    busy = true;
    ready.then(function () { return announceOne(waiting.shift()); })
      .catch(function () {}).then(function () { busy = false; next(); });
  }

  window.QTSpeech = {
    announce: function (call) {
      waiting.push(call);
      if (waiting.length > MAX_WAITING) { waiting.shift(); }
      next();
    },
    log: log,  // what was said and how, for the tests and for anyone debugging a TV
    busy: function () { return busy || waiting.length > 0; }
  };
})();
