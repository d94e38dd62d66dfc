"""ABDM Scan & Share: a patient scans the counter's QR with an ABHA app, shares their profile,
and gets a live ticket in the queue that counter serves (docs/abdm.md).

Modules, each with one job:

- ``protocol``: the HIECM v3 paths, headers, the share payload and the on-share reply (pure).
- ``caller``: is a callback really from the gateway? Its RS256 token against the published keys.
- ``gateway``: the outbound client (session token cached in Redis, refreshed on 401).
- ``records``: shared profiles, their consent records and the registrations made from them (SQLite).
- ``share``: one share → a de-duplicated ticket in the live queue and a reply on its way.
- ``jobs``: the RQ job that sends the on-share reply, with retries and never twice.
- ``routes``: the callback (root ``POST /api/v3/hip/patient/share``) and reception's API.
- ``commands``: ``qtraq-live abdm check``.
"""
