-- ABDM Scan & Share (qtraq_live/abdm/records.py). Personal data: erasure (by ABHA address) and
-- the retention purge (abdm.profile_days after the visit) reach every row here.

-- One shared profile: one PROFILE_SHARE callback that issued (or repeated) a ticket.
CREATE TABLE IF NOT EXISTS abdm_profiles (
    id             INTEGER PRIMARY KEY,
    request_id     TEXT NOT NULL UNIQUE,    -- the gateway's REQUEST-ID of the share
    clinic         TEXT NOT NULL,
    queue          TEXT NOT NULL,
    ticket_id      INTEGER NOT NULL,
    label          TEXT NOT NULL,           -- the token number the ABHA app shows
    hip_id         TEXT NOT NULL,
    context        TEXT NOT NULL,           -- the counter id from the QR
    hpr_id         TEXT,
    abha_address   TEXT NOT NULL,
    abha_number    TEXT,
    name           TEXT NOT NULL,
    gender         TEXT NOT NULL,           -- M F O D T U, as shared
    year_of_birth  INTEGER NOT NULL,
    month_of_birth INTEGER,
    day_of_birth   INTEGER,
    phone          TEXT,                    -- E.164
    address_line   TEXT,
    district       TEXT,
    state          TEXT,
    pincode        TEXT,
    status         TEXT NOT NULL DEFAULT 'waiting',  -- waiting (for registration) | registered
    patient_id     INTEGER,                 -- abdm_patients.id once registered
    registered_by  TEXT,                    -- staff actor
    registered_at  INTEGER,
    created_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS abdm_profiles_waiting ON abdm_profiles(clinic, status, created_at);
CREATE INDEX IF NOT EXISTS abdm_profiles_abha ON abdm_profiles(abha_address);

-- The share is the patient's consent to these fields for this visit: its record.
CREATE TABLE IF NOT EXISTS abdm_consents (
    id           INTEGER PRIMARY KEY,
    profile_id   INTEGER NOT NULL REFERENCES abdm_profiles(id) ON DELETE CASCADE,
    abha_address TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    fields       TEXT NOT NULL,             -- JSON list of the fields shared
    notify       INTEGER NOT NULL DEFAULT 0, -- the watch link goes to the shared phone number
    given_at     INTEGER NOT NULL,
    retain_until INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS abdm_consents_profile ON abdm_consents(profile_id);

-- The clinic's registration of an ABHA holder, made from a shared profile in one click;
-- a returning patient's next share links to the same row.
CREATE TABLE IF NOT EXISTS abdm_patients (
    id             INTEGER PRIMARY KEY,
    clinic         TEXT NOT NULL,
    abha_address   TEXT NOT NULL,
    abha_number    TEXT,
    name           TEXT NOT NULL,
    gender         TEXT NOT NULL,
    year_of_birth  INTEGER NOT NULL,
    month_of_birth INTEGER,
    day_of_birth   INTEGER,
    phone          TEXT,
    address_line   TEXT,
    district       TEXT,
    state          TEXT,
    pincode        TEXT,
    visits         INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (clinic, abha_address)
);
