/* The admin page: each clinic's announcement languages (the clinic field `languages`), the
   languages its TVs say calls in, in order. A code list such as "ta, en", saved as it changes
   through PATCH /api/v1/clinics/{clinic}; a refused value stays, its reason shown beside it. */
"use strict";
(function () {
  var QT = window.QT;
  var msg = document.getElementById("a-msg");

  function say(text, bad) { if (msg) { msg.textContent = text; msg.className = bad ? "error" : "ok"; } }

  function codes(text) {
    return text.split(/[\s,]+/).map(function (c) { return c.trim().toLowerCase(); }).filter(Boolean);
  }

  document.querySelectorAll(".a-settings").forEach(function (row) {
    var anchor = row.querySelector("[data-field][data-url^='/api/v1/clinics/']");
    if (!anchor) { return; }
    var url = anchor.dataset.url, id = "speech-" + url.split("/").pop();
    var wrap = document.createElement("div"), label = document.createElement("label"), input = document.createElement("input");
    label.htmlFor = id;
    label.textContent = QT.t("speech_languages");
    input.id = id;
    input.type = "text";
    input.size = 16;
    input.autocomplete = "off";
    input.spellcheck = false;
    input.title = QT.t("speech_languages_help");
    input.setAttribute("data-error-text", row.dataset.speechError || "");  // in the page's language
    input.setAttribute("aria-describedby", id + "-help");
    var help = document.createElement("small");
    help.id = id + "-help";
    help.className = "muted";
    help.textContent = QT.t("speech_languages_help");
    wrap.appendChild(label);
    wrap.appendChild(input);
    wrap.appendChild(help);
    row.appendChild(wrap);
    var saved = "";
    QT.api("GET", url).then(function (clinic) {
      saved = (clinic.languages || []).join(", ");
      input.value = saved;
    }, function (err) { say(QT.errorText(err), true); });
    input.addEventListener("change", function () {
      input.disabled = true;
      QT.api("PATCH", url, { languages: codes(input.value) }).then(function (clinic) {
        input.disabled = false;
        saved = input.value = clinic.languages.join(", ");
        say(QT.t("saved"));
      }, function (err) {
        input.disabled = false;
        if (!QT.formError({ id: "", elements: { languages: input } }, err)) { say(QT.errorText(err), true); }
      });
    });
  });
})();
