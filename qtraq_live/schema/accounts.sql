-- Patient accounts, linked patients, appointments, consent and the account session log.
-- Personal fields live only here (and in the notifier's delivery log), so erasure and
-- retention reach them; times are epoch milliseconds (UTC).

CREATE TABLE IF NOT EXISTS accounts (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    email           TEXT UNIQUE,          -- lower-cased
    mobile          TEXT UNIQUE,          -- E.164
    email_verified  INTEGER NOT NULL DEFAULT 0,
    mobile_verified INTEGER NOT NULL DEFAULT 0,
    password_hash   TEXT NOT NULL,        -- argon2id
    gender          TEXT,
    date_of_birth   TEXT,                 -- YYYY-MM-DD
    state           TEXT,
    city            TEXT,
    lang            TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- One pending code per account and channel; the code itself is never stored.
CREATE TABLE IF NOT EXISTS account_codes (
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    channel      TEXT NOT NULL CHECK (channel IN ('email', 'mobile')),
    code_hash    TEXT NOT NULL,           -- HMAC-SHA256 keyed with the server secret
    expires_at   INTEGER NOT NULL,
    tries        INTEGER NOT NULL DEFAULT 0,
    sent_at      INTEGER NOT NULL,
    window_start INTEGER NOT NULL,        -- start of the hour in which `sends` are counted
    sends        INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (account_id, channel)
);

CREATE TABLE IF NOT EXISTS account_consent_history (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    changed_at    INTEGER NOT NULL,
    notifications INTEGER NOT NULL,
    analytics     INTEGER NOT NULL,
    marketing     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS account_consent_history_account ON account_consent_history(account_id, id);

-- Login sessions as the account sees them at /me/sessions (the live session is in Redis).
CREATE TABLE IF NOT EXISTS account_sessions (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    ip         TEXT NOT NULL,
    os         TEXT NOT NULL,
    browser    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS account_sessions_account ON account_sessions(account_id, created_at);

CREATE TABLE IF NOT EXISTS patients (
    id                INTEGER PRIMARY KEY,
    account_id        INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    date_of_birth     TEXT,
    age               INTEGER,
    age_recorded_on   TEXT,               -- the day `age` was given, so it can be aged
    gender            TEXT,
    blood_group       TEXT,
    relation          TEXT NOT NULL,
    consent_confirmed INTEGER NOT NULL DEFAULT 0,
    consent_at        INTEGER,            -- when the account confirmed the person agreed
    guardian_declared INTEGER NOT NULL DEFAULT 0,
    guardian_at       INTEGER,            -- when the account declared parental/guardian consent
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS patients_account ON patients(account_id);

-- Slot settings of a queue that takes appointments by time (absent: by date only).
CREATE TABLE IF NOT EXISTS queue_slots (
    queue          TEXT PRIMARY KEY,
    slot_minutes   INTEGER NOT NULL,
    capacity       INTEGER NOT NULL,
    opens          TEXT NOT NULL,         -- HH:MM clinic time
    closes         TEXT NOT NULL,
    order_policy   TEXT NOT NULL DEFAULT 'slot' CHECK (order_policy IN ('slot', 'arrival')),
    grace_minutes  INTEGER NOT NULL DEFAULT 30,
    updated_at     INTEGER NOT NULL
);

-- After erasure account_id and patient_id become NULL: the row stays as de-identified
-- statistics (queue, date, slot, status).
CREATE TABLE IF NOT EXISTS appointments (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    patient_id    INTEGER REFERENCES patients(id) ON DELETE SET NULL,
    clinic        TEXT NOT NULL,
    queue         TEXT NOT NULL,
    date          TEXT NOT NULL,          -- YYYY-MM-DD clinic time
    slot          TEXT,                   -- HH:MM clinic time
    at_ms         INTEGER NOT NULL,       -- slot start (date only: 09:00 clinic time) as epoch ms
    no_show_at    INTEGER NOT NULL,       -- still booked then: marked no_show
    status        TEXT NOT NULL CHECK (status IN ('booked', 'checked_in', 'cancelled', 'no_show')),
    ticket_id     INTEGER,
    reminded      TEXT NOT NULL DEFAULT '',  -- reminders sent: 'day', 'day,hour'
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS appointments_account ON appointments(account_id);
CREATE INDEX IF NOT EXISTS appointments_slot ON appointments(queue, date, slot, status);
CREATE INDEX IF NOT EXISTS appointments_due ON appointments(status, at_ms);
CREATE INDEX IF NOT EXISTS appointments_no_show ON appointments(status, no_show_at);
CREATE INDEX IF NOT EXISTS appointments_ticket ON appointments(ticket_id);

-- Who an imported appointment (no account) is for: used at check-in (the ticket's contact
-- row) and for reminders; deleted by the retention purge like walk-in contacts.
CREATE TABLE IF NOT EXISTS appointment_contacts (
    appointment_id INTEGER PRIMARY KEY REFERENCES appointments(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    mobile         TEXT,
    email          TEXT,
    created_at     INTEGER NOT NULL
);
