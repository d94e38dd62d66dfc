-- Replies from patients (qtraq_live/inbound): a reply is matched to the sender's tickets by
-- the number, so the walk-in contacts are searchable by it.
CREATE INDEX IF NOT EXISTS ticket_contacts_mobile ON ticket_contacts(mobile);
