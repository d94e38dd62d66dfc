-- Staff access: users, API tokens, display keys, and the audit log (web layer, access.py).
-- Secrets are stored only as SHA-256 hashes (tokens, keys) or argon2 hashes (passwords).
-- Redis mirrors users, API tokens and display keys for the hubs (access.mirror_access).

CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'reception', 'doctor')),
    queues        TEXT NOT NULL DEFAULT '[]',          -- JSON list of queue ids (doctors)
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_tokens (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE IF NOT EXISTS display_keys (
    id         INTEGER PRIMARY KEY,
    clinic     TEXT NOT NULL,                          -- live in Redis first: no foreign key
    key_hash   TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS display_keys_clinic ON display_keys (clinic);

-- Who did what to which id, from where. Ids only: no names, phones, emails or tokens.
CREATE TABLE IF NOT EXISTS audit_log (
    id     INTEGER PRIMARY KEY,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,                              -- "user:3", "anonymous", "patient"
    action TEXT NOT NULL,                              -- "ticket.next", "auth.login_failed"
    target TEXT NOT NULL DEFAULT '',                   -- "queue:gp", "ticket:42"
    ip     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
