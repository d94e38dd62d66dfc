"""Replies from patients: an SMS or WhatsApp message answering a notice.

    keywords.py    pure: a message's text -> what the patient asks (and in which language)
    signatures.py  pure: the gateways' HMAC signatures
    payloads.py    pure: SMS gateway posts and WhatsApp Cloud API webhooks -> messages
    senders.py     the sender's current tickets, matched by number and consent (SQLite + engine)
    replies.py     one message handled: rate limit, once per message id, act, answer

The answer goes out as a notice through the notifier and the RQ workers, on the channel the
message came in by. See docs/notifications.md ("Replies from patients").
"""
