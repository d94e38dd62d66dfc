-- Patient services (issue #22): documents, feedback, admin notices, payment, address, OIDC.
-- New tables rather than new columns, so an existing record gains them by CREATE IF NOT EXISTS.

-- A file a patient brought for a visit. The bytes are outside SQLite, encrypted, under
-- DATA_DIR/documents/ with random names (`blob`, `thumb`); deleting the row is followed by
-- deleting both files (qtraq_live/accounts/documents.py).
CREATE TABLE IF NOT EXISTS documents (
    id             INTEGER PRIMARY KEY,
    public_id      TEXT NOT NULL UNIQUE,   -- the id in URLs: random, never the row id
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    patient_id     INTEGER NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
    appointment_id INTEGER REFERENCES appointments(id) ON DELETE SET NULL,
    name           TEXT NOT NULL,          -- the name the patient gave it (shown to them and staff)
    type           TEXT NOT NULL CHECK (type IN ('image/jpeg', 'image/png', 'application/pdf')),
    size           INTEGER NOT NULL,       -- bytes of the stored (re-encoded) file, before encryption
    blob           TEXT NOT NULL UNIQUE,   -- random file name under DATA_DIR/documents/
    thumb          TEXT UNIQUE,            -- random file name of the thumbnail (images only)
    created_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_account ON documents(account_id);
CREATE INDEX IF NOT EXISTS documents_appointment ON documents(appointment_id);

-- One rating per ticket, given after `done`. No account or patient: de-identified by design.
CREATE TABLE IF NOT EXISTS feedback (
    ticket_id  INTEGER PRIMARY KEY,
    clinic     TEXT NOT NULL,
    queue      TEXT NOT NULL,
    day        TEXT NOT NULL,              -- YYYY-MM-DD clinic time of the visit
    rating     INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment    TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_clinic_day ON feedback(clinic, day);

-- Notices an admin sent to accounts (the text is the admin's, not personal data).
CREATE TABLE IF NOT EXISTS admin_notices (
    id         INTEGER PRIMARY KEY,
    purpose    TEXT NOT NULL CHECK (purpose IN ('updates', 'maintenance', 'security')),
    channels   TEXT NOT NULL,              -- JSON list
    subject    TEXT NOT NULL,
    text       TEXT NOT NULL,
    recipients INTEGER NOT NULL,
    sent_by    TEXT NOT NULL,              -- actor, e.g. user:3
    created_at INTEGER NOT NULL
);

-- How the patient will pay for an appointment (never card data), and whether reception saw it paid.
CREATE TABLE IF NOT EXISTS appointment_payments (
    appointment_id INTEGER PRIMARY KEY REFERENCES appointments(id) ON DELETE CASCADE,
    method         TEXT CHECK (method IN ('cash', 'upi', 'card_at_clinic', 'insurance', 'other')),
    paid_at        INTEGER,
    paid_by        TEXT
);

-- A clinic's UPI id and each queue's fee (mirrored into Redis for the ticket page on any hub).
CREATE TABLE IF NOT EXISTS payment_settings (
    clinic  TEXT NOT NULL,
    queue   TEXT NOT NULL DEFAULT '',      -- '' : the clinic's own row (upi_vpa)
    upi_vpa TEXT,
    fee     INTEGER,
    PRIMARY KEY (clinic, queue)
);

-- The optional postal address of an account (kept apart from `accounts` so no column is added).
CREATE TABLE IF NOT EXISTS account_addresses (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    address    TEXT NOT NULL
);

-- An OpenID Connect identity linked to an account (by the provider's verified email, once).
CREATE TABLE IF NOT EXISTS account_oidc (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    linked_at  INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);
