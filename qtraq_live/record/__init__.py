"""The durable record: SQLite (``store``), the persister that writes the clinics' events into it,
the rebuild that reads it back into Redis, staff access records, the staff audit log and the
security log.

The tables are in ``qtraq_live/schema/``.
"""
