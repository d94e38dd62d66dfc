/* Reception: the shared-profiles panel (ABDM Scan & Share). Lists the ABHA profiles shared at
   the chosen clinic's counters that wait for registration, and registers one in one click
   (POST /api/v1/abdm/profiles/{id}/register). Stays hidden while Scan & Share is off.
   Refreshes every few seconds while the page is visible. */
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var panel = $("abdm-panel"), clinic = $("r-clinic");
  if (!panel || !clinic) { return; }
  var EVERY_MS = 5000, busy = false, off = false;

  function say(text, bad) {
    $("abdm-msg").textContent = text;
    $("abdm-msg").classList.toggle("error", !!bad);
  }

  function gender(code) {
    var key = "abdm_gender_" + code;
    var text = QT.t(key);
    return text === key ? code : text;
  }

  function item(p) {
    var li = document.createElement("li");
    li.className = "abdm-item";
    var label = document.createElement("span");
    label.className = "abdm-label";
    label.textContent = p.label;
    var who = document.createElement("span");
    who.className = "abdm-who";
    var tag = document.createElement("span");
    tag.className = "abdm-tag";
    tag.textContent = QT.t("source_abdm");
    who.appendChild(tag);
    who.appendChild(document.createTextNode(" " + p.name + " · " + QT.t("abdm_age", { age: p.age }) + " · " + gender(p.gender)));
    var abha = document.createElement("span");
    abha.className = "abdm-abha";
    abha.textContent = p.abha_address;
    who.appendChild(abha);
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = QT.t("abdm_register");
    button.setAttribute("aria-label", QT.t("abdm_register_who", { name: p.name, label: p.label }));
    button.addEventListener("click", function () { register(p, button); });
    li.appendChild(label);
    li.appendChild(who);
    li.appendChild(button);
    return li;
  }

  function show(profiles) {
    var list = $("abdm-list");
    list.textContent = "";
    profiles.forEach(function (p) { list.appendChild(item(p)); });
    $("abdm-count").textContent = "(" + profiles.length + ")";
    QT.show($("abdm-empty"), profiles.length === 0);
    QT.show(panel, true);
  }

  function load() {
    if (busy || !clinic.value) { return; }
    busy = true;
    QT.api("GET", "/api/v1/clinics/" + encodeURIComponent(clinic.value) + "/abdm/profiles").then(function (res) {
      busy = false;
      if (!res.enabled) { off = true; QT.show(panel, false); return; }  // Scan & Share is off
      show(res.profiles || []);
    }, function (err) {
      busy = false;
      say(QT.errorText(err), true);
    });
  }

  function register(p, button) {
    button.disabled = true;
    QT.api("POST", "/api/v1/abdm/profiles/" + p.id + "/register", {}).then(function (res) {
      say(QT.t("abdm_registered", { name: res.patient.name, label: p.label, id: res.patient.id }));
      load();
    }, function (err) {
      button.disabled = false;
      say(QT.errorText(err), true);
      load();
    });
  }

  function tick() {
    if (off) { return; }  // off on this server: no more asking
    if (!document.hidden) { load(); }
    setTimeout(tick, EVERY_MS);
  }

  clinic.addEventListener("change", function () { $("abdm-list").textContent = ""; say(""); load(); });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { load(); } });
  tick();
})();
