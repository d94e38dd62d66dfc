-- Replies from patients (qtraq_live/inbound): a reply is matched to the sender's tickets by
-- the number, so the walk-in contacts are searchable by it.
CREATE INDEX IF NOT EXISTS ticket_contacts_mobile ON ticket_contacts(mobile);

-- Spoken calls (qtraq_live/speech): a clinic's announcement languages in order, JSON list.
CREATE TABLE IF NOT EXISTS clinic_languages (
    clinic_id  TEXT PRIMARY KEY,
    languages  TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
