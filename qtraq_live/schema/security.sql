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
WHEN old.at > (CAST(strftime('%s', 'now') AS INTEGER) - 365 * 86400) * 1000 BEGIN
    SELECT RAISE(ABORT, 'security log entries are kept at least a year');
END;

-- What an API token may do and until when (absent: everything its user may, for ever).
CREATE TABLE IF NOT EXISTS api_token_limits (
    token_id   INTEGER PRIMARY KEY REFERENCES api_tokens(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL DEFAULT '',       -- '' or 'press' (auth.SCOPE_ACTIONS)
    expires_at INTEGER                         -- epoch seconds, NULL: no expiry
);

-- Consent records (DPDP Rules): which notice version the person saw, the purposes agreed to,
-- how (channel) and when. One row per change; the account's choices stay in
-- account_consent_history. Walk-in consents are kept by ticket (until the contact is purged).
CREATE TABLE IF NOT EXISTS consent_records (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    ticket_id      INTEGER,
    notice_version TEXT NOT NULL,
    purposes       TEXT NOT NULL,               -- JSON list: "notifications", "analytics", "marketing"
    channel        TEXT NOT NULL,               -- "web", "self_check_in", "reception", "api"
    at             INTEGER NOT NULL             -- epoch ms
);
CREATE INDEX IF NOT EXISTS consent_records_account ON consent_records (account_id, id);
CREATE INDEX IF NOT EXISTS consent_records_ticket ON consent_records (ticket_id);

-- How a guardian's consent for a child was verified (DPDP Rules, rule 10): "verified_account"
-- (the guardian is a registered user whose contact is verified: rule 10(1)(a)) or "document"
-- (a token or reference from an entity entrusted by law, e.g. DigiLocker: rule 10(1)(b)).
CREATE TABLE IF NOT EXISTS guardian_verifications (
    patient_id       INTEGER PRIMARY KEY REFERENCES patients(id) ON DELETE CASCADE,
    method           TEXT NOT NULL CHECK (method IN ('verified_account', 'document')),
    reference        TEXT,                      -- the document token's reference (method document)
    verified_contact TEXT NOT NULL,             -- which of the guardian's verified contacts: email or mobile
    at               INTEGER NOT NULL
);

-- The person an account holder names to exercise their rights after death or incapacity.
CREATE TABLE IF NOT EXISTS nominees (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    relation   TEXT NOT NULL,
    contact    TEXT NOT NULL,                   -- email or E.164 mobile
    at         INTEGER NOT NULL
);
