/* The admin page's staff-access section (_admin_access.html): disable or enable a user, reset a
   password, change a role, end sessions, create and revoke API tokens. Every change answers at
   once in every server process (the API's staff_access module announces it). */
"use strict";
(function () {
  var QT = window.QT;
  var $ = function (id) { return document.getElementById(id); };
  var users = [];

  function say(text, bad) {
    var m = $("a-msg");
    m.textContent = text;
    m.className = bad ? "error" : "ok";
  }
  function fail(err) { say(QT.errorText(err), true); }
  /* A form's error next to its field (``byCode``: where an error that names no field belongs). */
  function failIn(form, byCode) {
    return function (err) { if (!QT.formError(form, err, byCode)) { fail(err); } };
  }
  function current() {
    var id = parseInt($("ax-user").value, 10);
    return users.filter(function (u) { return u.id === id; })[0];
  }
  function userUrl(u) { return "/api/v1/admin/users/" + u.id; }

  function showUser() {
    var u = current();
    if (!u) { return; }
    $("ax-state").textContent = QT.t(u.disabled ? "access_disabled" : "access_active");
    QT.show($("ax-disable"), !u.disabled);
    QT.show($("ax-enable"), u.disabled);
    $("ax-role").value = u.role;
    $("ax-queues").value = u.queues.join(", ");
    loadTokens();
  }

  function loadUsers(keep) {
    QT.api("GET", "/api/v1/admin/users").then(function (res) {
      users = res.users;
      var select = $("ax-user");
      select.textContent = "";
      users.forEach(function (u) {
        var o = document.createElement("option");
        o.value = String(u.id);
        o.textContent = u.username;
        select.appendChild(o);
      });
      if (keep) { select.value = String(keep); }
      showUser();
    }, fail);
  }

  function date(seconds) { return seconds ? new Date(seconds * 1000).toISOString().slice(0, 10) : QT.t("access_never"); }

  function loadTokens() {
    var u = current();
    if (!u) { return; }
    QT.api("GET", "/api/v1/admin/tokens?user=" + encodeURIComponent(u.username)).then(function (res) {
      var body = $("ax-tokens");
      body.textContent = "";
      res.tokens.forEach(function (t) {
        var tr = document.createElement("tr"), state;
        if (t.active) {  // QT.revokeButton: admin.js, loaded first
          state = QT.revokeButton("/api/v1/admin/tokens/" + t.id, function () { say(QT.t("revoked")); loadTokens(); }, fail);
        } else {
          state = document.createTextNode(QT.t(t.revoked_at ? "revoked" : "access_expired"));
        }
        [String(t.id), QT.t(t.scope ? "access_scope_" + t.scope : "access_scope_all"), t.created_at, date(t.expires_at), state]
          .forEach(function (v) {
            var td = document.createElement("td");
            if (v instanceof Node) { td.appendChild(v); } else { td.textContent = v; }
            tr.appendChild(td);
          });
        body.appendChild(tr);
      });
    }, fail);
  }

  function change(body, message, form, byCode) {
    var u = current();
    return QT.api("PATCH", userUrl(u), body).then(function () { say(message); loadUsers(u.id); return true; },
      function (err) { (form ? failIn(form, byCode) : fail)(err); return false; });
  }

  $("ax-user").addEventListener("change", showUser);
  $("ax-disable").addEventListener("click", function () {
    if (window.confirm(QT.t("access_disable_confirm", { name: current().username }))) {
      change({ disabled: true }, QT.t("access_done_disabled", { name: current().username }));
    }
  });
  $("ax-enable").addEventListener("click", function () {
    change({ disabled: false }, QT.t("access_done_enabled", { name: current().username }));
  });
  $("ax-sessions").addEventListener("click", function () {
    var u = current();
    QT.api("DELETE", userUrl(u) + "/sessions").then(function (res) {
      say(QT.t("access_done_sessions", { n: res.ended }));
    }, fail);
  });
  $("ax-pass-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    change({ password: f.password.value }, QT.t("access_done_password", { name: current().username }), f)
      .then(function (ok) { if (ok) { f.reset(); } });
  });
  $("ax-role-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    var queues = f.queues.value.split(",").map(function (q) { return q.trim(); }).filter(Boolean);
    change({ role: f.role.value, queues: f.role.value === "doctor" ? queues : [] }, QT.t("saved"), f,
      { own_account: "role" });
  });
  $("ax-token-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target, days = parseInt(f.expires_days.value, 10);
    QT.api("POST", userUrl(current()) + "/tokens", { scope: f.scope.value, expires_days: days || null })
      .then(function (res) {
        $("ax-token").textContent = res.token;
        QT.show($("ax-token-new"), true);
        loadTokens();
      }, failIn(f));
  });

  loadUsers();
}());
