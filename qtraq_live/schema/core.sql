-- The durable record of the live queues, written by the persister from the clinic event
-- streams and read back by `rebuild`. Times are epoch milliseconds (UTC), NULL when unset.
-- No foreign keys between these tables: the record must accept every event the live state
-- produced, in any redelivery order, and `updated_version` keeps the newest state.

CREATE TABLE IF NOT EXISTS store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS clinics (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    timezone        TEXT NOT NULL,
    mask_names      INTEGER NOT NULL DEFAULT 0,
    lang            TEXT NOT NULL DEFAULT 'en',
    created_at      INTEGER,
    updated_version INTEGER NOT NULL DEFAULT 0,
    region          TEXT NOT NULL DEFAULT 'IN'  -- ISO 3166: how local phone numbers are read
);

CREATE TABLE IF NOT EXISTS queues (
    id              TEXT PRIMARY KEY,
    clinic          TEXT NOT NULL,
    name            TEXT NOT NULL,
    prefix          TEXT NOT NULL,
    avg_service_s   INTEGER NOT NULL,
    ema_s           INTEGER NOT NULL,
    self_checkin    INTEGER NOT NULL DEFAULT 0,
    notify_ahead    INTEGER NOT NULL DEFAULT 3,
    paused          INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER,
    created_version INTEGER NOT NULL,       -- orders a clinic's queues as they were created
    updated_version INTEGER NOT NULL DEFAULT 0,
    extra           TEXT NOT NULL DEFAULT '{}' -- live-only hash fields (e.g. pause timing), JSON
);
CREATE INDEX IF NOT EXISTS queues_clinic ON queues(clinic, created_version);

CREATE TABLE IF NOT EXISTS tickets (
    id              INTEGER PRIMARY KEY,
    clinic          TEXT NOT NULL,
    queue           TEXT NOT NULL,          -- the queue it is in now (transfers move it)
    issued_queue    TEXT,                   -- the queue whose label sequence gave its label
    label           TEXT NOT NULL,
    status          TEXT NOT NULL,
    prev_status     TEXT,
    priority        INTEGER NOT NULL DEFAULT 0,
    score           TEXT NOT NULL,          -- waiting-set score, exact (beyond float precision in JSON)
    name            TEXT,                   -- personal: erasure and retention reach it here
    token           TEXT,                   -- tracking token, restored by rebuild
    notify          INTEGER NOT NULL DEFAULT 0,
    lang            TEXT,
    counter         TEXT,
    recalls         INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER,
    called_at       INTEGER,
    served_at       INTEGER,
    done_at         INTEGER,
    day             TEXT NOT NULL,          -- YYYYMMDD in the clinic's timezone at issue
    appointment_id  TEXT,
    issue_ahead     INTEGER NOT NULL DEFAULT 0,  -- people ahead when it was issued
    source          TEXT NOT NULL DEFAULT 'reception',  -- how it came: queue_engine.TicketSource
    eta_issue_s     INTEGER,                -- the ETA shown at issue (ETA quality: vs called_at - created_at)
    updated_version INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER                 -- time of the event that left it in this state
);
CREATE INDEX IF NOT EXISTS tickets_queue_status ON tickets(queue, status);
CREATE INDEX IF NOT EXISTS tickets_clinic_day ON tickets(clinic, day);
CREATE INDEX IF NOT EXISTS tickets_day ON tickets(day);
CREATE INDEX IF NOT EXISTS tickets_status_updated ON tickets(status, updated_at);

-- Contact details of walk-in tickets, written by the issuing endpoint before the ticket
-- exists (so no foreign key); Redis never holds them.
CREATE TABLE IF NOT EXISTS ticket_contacts (
    ticket_id  INTEGER PRIMARY KEY,
    mobile     TEXT,
    email      TEXT,
    created_at INTEGER NOT NULL
);

-- Every event of every clinic, once. `body` is the event JSON without patient names.
CREATE TABLE IF NOT EXISTS events (
    clinic     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    type       TEXT NOT NULL,
    at         INTEGER NOT NULL,
    queue      TEXT,
    ticket_ids TEXT NOT NULL DEFAULT '[]', -- JSON list of the ticket ids the change touched
    body       TEXT NOT NULL,
    PRIMARY KEY (clinic, version)
);
CREATE INDEX IF NOT EXISTS events_type ON events(clinic, type, version);

-- The newest persisted version of each clinic, and the clinic's arrival stamp (µs) at that
-- time, so a rebuilt clinic continues both.
CREATE TABLE IF NOT EXISTS clinic_versions (
    clinic  TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    arrival INTEGER
);

-- When each counter last pressed "next" (how many counters are open drives the ETA).
CREATE TABLE IF NOT EXISTS counters_seen (
    queue   TEXT NOT NULL,
    counter TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (queue, counter)
);
