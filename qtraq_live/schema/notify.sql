-- Notices (workers/): the delivery log and per-clinic channel URLs.
-- No message text and no recipient is stored: `recipient_hint` is masked ("+91***10").

CREATE TABLE IF NOT EXISTS notices (
    id             INTEGER PRIMARY KEY,
    key            TEXT NOT NULL UNIQUE,      -- dedupe key, e.g. "t12:called:40:sms"
    kind           TEXT NOT NULL,             -- issued, ahead, called, ..., verify_code
    channel        TEXT NOT NULL,             -- email, sms, whatsapp
    clinic_id      TEXT,
    ticket_id      INTEGER,
    recipient_hint TEXT,
    status         TEXT NOT NULL,             -- queued, sending, retrying, sent, failed, dropped
    reason         TEXT,                      -- why failed/dropped: stale, no_consent, template_error, ...
    response_class TEXT,                      -- last provider answer: accepted, rejected, unreachable, timeout
    attempts       INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,          -- epoch ms
    updated_at     INTEGER NOT NULL,
    sent_at        INTEGER
);
CREATE INDEX IF NOT EXISTS notices_status ON notices(status, id);
CREATE INDEX IF NOT EXISTS notices_ticket ON notices(ticket_id);

-- One row per provider call (or per call whose outcome was lost in a crash).
CREATE TABLE IF NOT EXISTS notice_attempts (
    id             INTEGER PRIMARY KEY,
    notice_id      INTEGER NOT NULL REFERENCES notices(id) ON DELETE CASCADE,
    attempt        INTEGER NOT NULL,
    outcome        TEXT NOT NULL,             -- sent, retrying, failed
    reason         TEXT,
    response_class TEXT,
    at             INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS notice_attempts_notice ON notice_attempts(notice_id);

-- A clinic's own channel URLs, overriding [notify] in the config (mirrored to qt:notify:ch:{clinic}).
CREATE TABLE IF NOT EXISTS notify_channels (
    clinic_id  TEXT NOT NULL,
    channel    TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp')),
    url        TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (clinic_id, channel)
);
