"""Notices: queue and account events turned into SMS, email and WhatsApp messages.

    notifier.py      primary duty: clinic events + account requests -> notices -> RQ jobs
    triggers.py      pure rules: which notices an event calls for
    recipients.py    who gets a ticket's notices (walk-in contacts; the accounts hook)
    ledger.py        the per-notice record in Redis (dedupe, state machine, delivery stream)
    jobs.py          module-level RQ jobs: re-check, render, send through Apprise
    channels.py      Apprise URLs: validation, ``{to}`` filling, sending
    overrides.py     a clinic's own channel URLs (SQLite, mirrored to Redis)
    render.py        Jinja2 templates per kind and language
    delivery_log.py  delivery stream -> SQLite, the admin's dead-letter view
    notices.py       what other areas call: account notices, consent, retry
    worker.py        ``qtraq-live worker``: RQ workers on notify-high and notify

See ``docs/notifications.md`` for operators and ``docs/internals.md`` ("Notices") for the
interfaces other areas call.
"""
