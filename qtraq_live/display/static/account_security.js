/* The portal's signed-in devices (log one out) and nominee (_account_security.html). */
"use strict";
(function () {
  var QT = window.QT;
  var $ = function (id) { return document.getElementById(id); };
  if (!QT.data.signed_in || !$("devices")) { return; }

  function say(text, bad) {
    var m = $("nominee-msg");
    m.textContent = text;
    m.className = bad ? "error" : "ok";
  }

  function loadDevices() {
    QT.api("GET", "/api/v1/me/sessions").then(function (res) {
      var ul = $("devices");
      ul.textContent = "";
      res.sessions.filter(function (s) { return s.active; }).forEach(function (s) {
        var li = document.createElement("li"), text = document.createElement("span");
        text.textContent = [new Date(s.at).toLocaleString(QT.data.lang), s.os, s.browser, s.ip].join(" · ");
        li.appendChild(text);
        if (s.current) {
          var here = document.createElement("strong");
          here.textContent = " " + QT.t("portal_this_device");
          li.appendChild(here);
        } else {
          var b = document.createElement("button");
          b.type = "button";
          b.className = "secondary";
          b.textContent = QT.t("portal_log_out_device");
          b.addEventListener("click", function () {
            QT.api("DELETE", "/api/v1/me/sessions/" + s.id).then(loadDevices, function (err) { say(QT.errorText(err), true); });
          });
          li.appendChild(b);
        }
        ul.appendChild(li);
      });
    }, function (err) { say(QT.errorText(err), true); });
  }

  function loadNominee() {
    QT.api("GET", "/api/v1/me/nominee").then(function (res) {
      var f = $("nominee-form"), n = res.nominee;
      f.name.value = n ? n.name : "";
      f.relation.value = n ? n.relation : "";
      f.contact.value = n ? n.contact : "";
      QT.show($("nominee-remove"), !!n);
    }, function (err) { say(QT.errorText(err), true); });
  }

  $("nominee-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    QT.api("PUT", "/api/v1/me/nominee", { name: f.name.value.trim(), relation: f.relation.value.trim(),
      contact: f.contact.value.replace(/[\s()-]/g, "") }).then(function () { say(QT.t("saved")); loadNominee(); },
      function (err) { say(QT.errorText(err), true); });
  });
  $("nominee-remove").addEventListener("click", function () {
    QT.api("DELETE", "/api/v1/me/nominee").then(function () { say(QT.t("saved")); loadNominee(); },
      function (err) { say(QT.errorText(err), true); });
  });

  loadDevices();
  loadNominee();
}());
