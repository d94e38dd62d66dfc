/* The admin page: clinics and queues, staff users, display keys, notification checks and the
   failed-notices list, stats charts (SVG drawn by the server). */
"use strict";
(function () {
  var QT = window.QT, d = QT.data;
  var $ = function (id) { return document.getElementById(id); };

  function say(text, bad) {
    var m = $("a-msg");
    m.textContent = text;
    m.className = bad ? "error" : "ok";
  }

  function cells(tr, values) {
    values.forEach(function (v) {
      var td = document.createElement("td");
      if (v instanceof Node) { td.appendChild(v); } else { td.textContent = v === null || v === undefined ? "" : String(v); }
      tr.appendChild(td);
    });
    return tr;
  }

  /* An error beside the admin form field it is about (QT.fieldError), in the page's own words
     for that control when it has them: data-error-<code>, else data-error-text (rendered in the
     page's language; a channel URL named "email" is no email address). ``byCode`` names the
     field of an error that names none ({already_exists: "id"}); "queues[0]" is about "queues".
     False when the form has no such field. The other admin scripts use it too. */
  QT.formError = function (form, err, byCode) {
    var named = err && err.field ? String(err.field).replace(/[\[.].*$/, "") : null;
    var name = named || (byCode && err && byCode[err.code]), input = name && form.elements[name], only = {};
    if (input && !input.tagName && input.length) { input = input[0].closest("fieldset") || input[0]; }  // checkboxes
    if (!input || !input.tagName) { return false; }
    only[name] = input;  // the control itself, also when it is a group's fieldset
    QT.fieldError({ id: form.id, elements: only }, Object.assign({}, err, { field: name }));
    var own = input.getAttribute("data-error-" + err.code) || (named === name && input.getAttribute("data-error-text"));
    if (own) { document.getElementById(input.id + "-error").textContent = own; }
    return true;
  };

  /* A "Revoke" button (display keys, API tokens): asks first, then DELETEs ``url``. */
  QT.revokeButton = function (url, done, failed) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "danger";
    b.textContent = QT.t("revoke");
    b.addEventListener("click", function () {
      if (!window.confirm(QT.t("revoke_confirm"))) { return; }
      QT.api("DELETE", url).then(done, failed);
    });
    return b;
  };

  /* A form's error goes next to its field, else on the page's message line. */
  function submitJson(form, url, body, done, byCode) {
    var btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    QT.api("POST", url, body).then(function (res) { btn.disabled = false; done(res); },
      function (err) {
        btn.disabled = false;
        if (!QT.formError(form, err, byCode)) { say(QT.errorText(err), true); }
      });
  }
  var TAKEN_ID = { already_exists: "id" };

  document.querySelectorAll(".clinic-select").forEach(function (s) {
    d.clinics.forEach(function (c) {
      var o = document.createElement("option");
      o.value = c.id;
      o.textContent = c.name;
      s.appendChild(o);
    });
  });

  $("clinic-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    submitJson(f, "/api/v1/clinics", { id: f.id.value.trim(), name: f.name.value.trim(), timezone: f.timezone.value.trim(),
      lang: f.lang.value, mask_names: f.mask_names.checked }, function () { location.reload(); }, TAKEN_ID);
  });

  $("queue-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    submitJson(f, "/api/v1/clinics/" + encodeURIComponent(f.clinic.value) + "/queues", {
      id: f.id.value.trim(), name: f.name.value.trim(), prefix: f.prefix.value.trim().toUpperCase(),
      avg_service_s: parseInt(f.avg_service_s.value, 10) || 300, self_checkin: f.self_checkin.checked
    }, function () { location.reload(); }, { already_exists: "id", not_found: "clinic" });
  });

  /* Settings changed in place: one PATCH per change, undone on the screen if refused. */
  document.querySelectorAll(".a-setting").forEach(function (input) {
    var before = input.type === "checkbox" ? input.checked : input.value;
    input.addEventListener("change", function () {
      var value = input.type === "checkbox" ? input.checked : input.value, body = {};
      body[input.dataset.field] = value;
      input.disabled = true;
      QT.api("PATCH", input.dataset.url, body).then(function () {
        input.disabled = false;
        before = value;
        say(QT.t("saved"));
      }, function (err) {
        input.disabled = false;
        if (input.type === "checkbox") { input.checked = before; } else { input.value = before; }
        say(QT.errorText(err), true);
      });
    });
  });

  function loadUsers() {
    QT.api("GET", "/api/v1/admin/users").then(function (res) {
      var body = $("users");
      body.textContent = "";
      res.users.forEach(function (u) {
        body.appendChild(cells(document.createElement("tr"), [u.username, QT.t("role_" + u.role), u.queues.join(", ")]));
      });
    }, function (err) { say(QT.errorText(err), true); });
  }

  $("user-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    var queues = f.queues.value.split(",").map(function (q) { return q.trim(); }).filter(Boolean);
    submitJson(f, "/api/v1/admin/users", { username: f.username.value.trim(), password: f.password.value,
      role: f.role.value, queues: queues }, function (res) {
      f.reset();
      say(QT.t("user_added", { name: res.user.username }));
      loadUsers();
    }, { already_exists: "username" });
  });

  function keysUrl() { return "/api/v1/admin/clinics/" + encodeURIComponent($("kf-clinic").value) + "/display-keys"; }

  function loadKeys() {
    if (!$("kf-clinic").value) { return; }
    QT.api("GET", keysUrl()).then(function (res) {
      var body = $("key-list");
      body.textContent = "";
      res.keys.forEach(function (k) {
        var state;
        if (k.revoked_at) { state = QT.t("revoked"); } else {
          state = QT.revokeButton(keysUrl() + "/" + k.id, function () { say(QT.t("revoked")); loadKeys(); },
            function (err) { say(QT.errorText(err), true); });
        }
        body.appendChild(cells(document.createElement("tr"), [k.id, k.label, k.created_at, state]));
      });
    }, function (err) { say(QT.errorText(err), true); });
  }

  $("kf-clinic").addEventListener("change", loadKeys);
  $("key-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    submitJson(f, keysUrl(), { label: f.label.value.trim() }, function (res) {
      f.label.value = "";
      $("key-url").href = res.display_url;
      $("key-url").textContent = res.display_url;
      QT.show($("key-new"), true);
      loadKeys();
    }, { not_found: "clinic" });
  });

  /* Notices: the failed list and the retry button, when this server has the notifications API. */
  function retryButton(n) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.textContent = QT.t("retry");
    b.addEventListener("click", function () {
      b.disabled = true;
      QT.api("POST", "/api/v1/notifications/" + n.id + "/retry", {}).then(function () { say(QT.t("retry_queued")); loadFailed(); },
        function (err) { b.disabled = false; say(QT.errorText(err), true); });
    });
    return b;
  }

  function loadFailed() {
    QT.api("GET", "/api/v1/notifications?status=failed").then(function (res) {
      QT.show($("failed"), true);
      var body = $("failed-list"), items = res.notifications || [];
      body.textContent = "";
      if (!items.length) { body.appendChild(cells(document.createElement("tr"), [QT.t("none_failed"), "", "", "", "", ""])); }
      items.forEach(function (n) {
        body.appendChild(cells(document.createElement("tr"), [n.updated_at || n.created_at, n.channel, n.kind,
          n.recipient, n.reason || n.response_class || "", retryButton(n)]));
      });
    }, function (err) { say(QT.errorText(err), true); });
  }

  $("test-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    submitJson(f, "/api/v1/notifications/test", { channel: f.channel.value, to: f.to.value.trim() }, function () {
      say(QT.t("test_sent"));
      setTimeout(loadFailed, 3000);
    }, { channel_not_configured: "channel" });
  });

  /* A clinic's own channel URLs (override the server's); the URLs are never shown back. */
  function channelsUrl() { return "/api/v1/clinics/" + encodeURIComponent($("cc-clinic").value) + "/notify-channels"; }

  function showChannels(res) {
    Object.keys(res.overrides || {}).forEach(function (c) {
      var state = $("cc-" + c + "-state");
      if (state) { state.textContent = res.overrides[c] ? QT.t("own_url") : QT.t("server_default"); }
      if ($("cc-" + c)) { $("cc-" + c).value = ""; }
    });
  }

  function loadChannels() {
    if (!d.channel_overrides || !$("cc-clinic").value) { return; }
    QT.show($("chan-form"), true);
    QT.api("GET", channelsUrl()).then(showChannels, function (err) { say(QT.errorText(err), true); });
  }

  function putChannels(body) {
    QT.api("PUT", channelsUrl(), body).then(function (res) { showChannels(res); say(QT.t("saved")); },
      function (err) { if (!QT.formError($("chan-form"), err)) { say(QT.errorText(err), true); } });
  }

  $("cc-clinic").addEventListener("change", loadChannels);
  $("chan-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = {};
    ["email", "sms", "whatsapp"].forEach(function (c) {
      var input = ev.target.elements[c];
      if (input && input.value.trim()) { body[c] = input.value.trim(); }
    });
    putChannels(body);
  });
  document.querySelectorAll(".cc-clear").forEach(function (b) {
    b.addEventListener("click", function () { var body = {}; body[b.dataset.channel] = null; putChannels(body); });
  });

  function loadCharts() {
    var c = $("sf-clinic").value;
    if (!c) { return; }
    ["wait-by-hour", "served-per-day", "tickets-by-source"].forEach(function (name) {
      $("chart-" + name).src = "/admin/charts/" + encodeURIComponent(c) + "/" + name + ".svg?lang=" + d.lang;
    });
    $("stats-csv").href = "/api/v1/clinics/" + encodeURIComponent(c) + "/stats?format=csv";
  }
  $("sf-clinic").addEventListener("change", loadCharts);

  loadUsers();
  loadKeys();
  QT.show($("test-form"), !!d.test_send);
  if (d.notices) { loadFailed(); }
  loadChannels();
  loadCharts();
})();
