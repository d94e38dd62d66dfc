-- Security and DPDP records (docs/security.md, docs/privacy.md): ids that are never reused,
-- unverified contact claims, and the append-only security log.

-- The highest id ever given out per table, so an erased account's id (and with it anything
-- still keyed by it) never passes to a new account. records.next_id reads it.
CREATE TABLE IF NOT EXISTS id_high_water (
    tbl  TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS accounts_id_high_water AFTER DELETE ON accounts BEGIN
    INSERT INTO id_high_water (tbl, last) VALUES ('accounts', old.id)
    ON CONFLICT (tbl) DO UPDATE SET last = max(last, excluded.last);
END;
CREATE TRIGGER IF NOT EXISTS patients_id_high_water AFTER DELETE ON patients BEGIN
    INSERT INTO id_high_water (tbl, last) VALUES ('patients', old.id)
    ON CONFLICT (tbl) DO UPDATE SET last = max(last, excluded.last);
END;

-- An email or mobile an account asked for while another account holds it. The account shows
-- it as its own, unverified; proving it with a code takes it from an unverified holder
-- (records.claim_verified). Registration answers the same whether or not the contact was taken.
CREATE TABLE IF NOT EXISTS contact_claims (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    channel    TEXT NOT NULL CHECK (channel IN ('email', 'mobile')),
    value      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, channel)
);

-- Append-only security log (DPDP Rules: kept at least a year; erasure does not remove it).
-- Subjects are pseudonymous: "account:<hmac>" / "user:<id>", never names, emails or phones.
CREATE TABLE IF NOT EXISTS security_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,                -- epoch ms
    event   TEXT NOT NULL,                   -- "account.login", "account.erased", "staff.login_failed"
    subject TEXT NOT NULL DEFAULT '',        -- pseudonymous id of whom it concerns
    actor   TEXT NOT NULL DEFAULT '',        -- who did it ("self", "user:3", "anonymous")
    ip      TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT '{}'       -- JSON: data categories, consent values, username
);
CREATE INDEX IF NOT EXISTS security_log_at ON security_log (at);
CREATE INDEX IF NOT EXISTS security_log_subject ON security_log (subject, at);
CREATE TRIGGER IF NOT EXISTS security_log_no_update BEFORE UPDATE ON security_log BEGIN
    SELECT RAISE(ABORT, 'the security log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS security_log_kept_a_year BEFORE DELETE ON security_log
WHEN old.at > (CAST(strftime('%s', 'now') AS INTEGER) - 366 * 86400) * 1000 BEGIN
    SELECT RAISE(ABORT, 'security log entries are kept at least a year');
END;

-- What an API token may do and until when (absent: everything its user may, for ever).
CREATE TABLE IF NOT EXISTS api_token_limits (
    token_id   INTEGER PRIMARY KEY REFERENCES api_tokens(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL DEFAULT '',       -- '' or 'press' (auth.SCOPE_ACTIONS)
    expires_at INTEGER                         -- epoch seconds, NULL: no expiry
);
