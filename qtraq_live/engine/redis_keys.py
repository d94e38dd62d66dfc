"""Every Redis key qtraq-live uses, named in one place.

Live queue state (written only by the engine's Lua script; read only by the engine and
``live_reads``, the reads it owns; the engine's Lua gets these names from ``live_schema``):

    qt:clinics                 set     clinic ids
    qt:c:{c}                   hash    clinic definition (id, name, timezone, mask_names, lang)
    qt:c:{c}:v                 string  the clinic's version (one sequence for all its queues)
    qt:c:{c}:events            stream  one entry per version, entry id "{version}-0", field "e" = event JSON
    qt:c:{c}:queues            zset    queue ids of the clinic, scored by creation order
    qt:c:{c}:recent            list    last calls, newest first, JSON {label, counter, queue, at}
    qt:c:{c}:arrival           string  last arrival stamp (µs), keeps arrival strictly increasing
    qt:q:{q}                   hash    queue definition + live fields (paused, ema_s)
    qt:q:{q}:waiting           zset    waiting ticket ids scored by (priority, arrival)
    qt:q:{q}:counters          hash    counter -> ticket id now called/serving there
    qt:q:{q}:seen              hash    counter -> last time (ms) it pressed "next" (open counters)
    qt:q:{q}:idle              zset    counters that pressed "next" and hold nobody, scored by that time
    qt:q:{q}:eta_profile       hash    learnt log gap between calls by hour: "w{hour of week}", "h{hour of day}";
                                       by a session's load (half-octaves of patients waiting): "l{0-19}"
    qt:q:{q}:labels:{day}      string  label sequence of that day (clinic timezone), expires
    qt:t:{id}                  hash    ticket state (no contact details: those live in SQLite)
    qt:tok:{token}             string  ticket token -> ticket id
    qt:seq:ticket              string  global ticket id sequence (ids never repeat)
    qt:idem:{q}:{key}          string  result of a "next" press with that Idempotency-Key (EX 600)

Access (written by the primary, read by every hub):

    qt:dk:{sha256}             string  display key hash -> clinic id
    qt:dkeys:{c}               set     display key hashes of a clinic (for revocation)
    qt:apitok:{sha256}         string  API token hash -> staff user id
    qt:user:{id}               hash    staff user (username, role, queues JSON, disabled)
    qt:sess:{sha256}           hash    login session (kind staff|account, uid, csrf, ip, ua, created)
    qt:rl:{scope}:{who}        string  rate-limit counters
    qt:credentials:changed     channel a staff credential ended (logout, rebuild): processes drop cached ones

Notices (the notifier and RQ workers; RQ keeps its own ``rq:`` keys):

    qt:notice:{key}            hash    one notice: state, attempts, payload until sent (see workers/ledger.py)
    qt:notice:log              stream  delivery outcomes, copied into SQLite by the primary
    qt:notice:requests         stream  account notices and admin retries for the notifier (deleted once handled)
    qt:notify:optout           set     consent subjects ("account:7", "ticket:12") that want no notices
    qt:notify:ch:{c}           hash    a clinic's channel URLs (email/sms/whatsapp) overriding the config

Messaging (issue #20: replies, Web Push, spoken calls):

    qt:inbound:{ch}:{sha256}   string  a patient's message (channel, gateway message id) already handled (7 days)
    qt:push:{ticket}           string  the ticket's Web Push subscription JSON (lives as long as the ticket)
    qt:speech:langs:{c}        string  the clinic's announcement languages, JSON list (mirror of SQLite clinic_languages)
    qt:push:vapid              hash    the server's VAPID key pair (public_key, private_pem), copied from DATA_DIR/vapid.json

Hub (each process's own, deleted when it stops):

    qt:hub:{id}:wake           stream  an XADD here wakes that hub's blocking XREAD (clinic set changed)

WebSockets per client address, counted across processes (web/socket_limits.py):

    qt:socks:procs             set     ids of the processes that hold counts
    qt:socks:p:{id}            hash    that process's open sockets by sha256(address)[:32], "~" marks it;
                                       its expiry is the process's lease (renewed by its heartbeat)

Patient services (written by the primary from its SQLite record, read by every hub):

    qt:pay:{c}                 hash    upi_vpa, fee:{queue} (rupees) for the ticket page's UPI link
    qt:oidc:{state}            string  a pending OpenID Connect sign-in: nonce, PKCE verifier (EX 600)

Other layers add their own prefixes here.
"""

from __future__ import annotations

import hashlib

PREFIX = "qt:"

CLINICS = "qt:clinics"
TICKET_SEQ = "qt:seq:ticket"


def clinic(c: str) -> str:
    return f"qt:c:{c}"


def version(c: str) -> str:
    return f"qt:c:{c}:v"


def events(c: str) -> str:
    return f"qt:c:{c}:events"


def clinic_of_events(stream: str) -> str | None:
    """The clinic whose event stream :func:`events` named ``stream``; None for any other key."""
    prefix, suffix = "qt:c:", ":events"
    if stream.startswith(prefix) and stream.endswith(suffix) and len(stream) > len(prefix) + len(suffix):
        return stream[len(prefix):-len(suffix)]
    return None


def clinic_queues(c: str) -> str:
    return f"qt:c:{c}:queues"


def recent(c: str) -> str:
    return f"qt:c:{c}:recent"


def arrival(c: str) -> str:
    return f"qt:c:{c}:arrival"


def queue(q: str) -> str:
    return f"qt:q:{q}"


def waiting(q: str) -> str:
    return f"qt:q:{q}:waiting"


def counters(q: str) -> str:
    return f"qt:q:{q}:counters"


def counters_seen(q: str) -> str:
    return f"qt:q:{q}:seen"


def counters_idle(q: str) -> str:
    return f"qt:q:{q}:idle"


def eta_profile(q: str) -> str:
    return f"qt:q:{q}:eta_profile"


def labels(q: str, day: str) -> str:
    return f"qt:q:{q}:labels:{day}"


def ticket(ticket_id: int | str) -> str:
    return f"qt:t:{ticket_id}"


def token(tok: str) -> str:
    return f"qt:tok:{tok}"


def idempotency(q: str, key: str) -> str:
    return f"qt:idem:{q}:{key}"


def secret_hash(secret: str) -> str:
    """Hash a display key, API token or session id for storage: only verification is needed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def display_key(secret: str) -> str:
    return f"qt:dk:{secret_hash(secret)}"


def display_key_by_hash(digest: str) -> str:
    """The display key's mirror key from its stored hash (revocation, rebuild)."""
    return f"qt:dk:{digest}"


def display_keys_of(c: str) -> str:
    return f"qt:dkeys:{c}"


def api_token(secret: str) -> str:
    return f"qt:apitok:{secret_hash(secret)}"


def api_token_by_hash(digest: str) -> str:
    """The API token's mirror key from its stored hash (rebuild)."""
    return f"qt:apitok:{digest}"


def user(user_id: int | str) -> str:
    return f"qt:user:{user_id}"


def session(sid: str) -> str:
    return f"qt:sess:{secret_hash(sid)}"


CREDENTIALS_CHANGED = "qt:credentials:changed"  # pub/sub: drop cached staff credentials (web/auth.py)
SESSIONS_PATTERN = "qt:sess:*"  # SCAN match for every session (erasing an account's sessions)


def rate_limit(scope: str, who: str) -> str:
    return f"qt:rl:{scope}:{who}"


NOTICE_LOG = "qt:notice:log"
NOTICE_REQUESTS = "qt:notice:requests"
NOTIFY_OPTOUT = "qt:notify:optout"


def notice(key: str) -> str:
    return f"qt:notice:{key}"


def notify_channels(c: str) -> str:
    return f"qt:notify:ch:{c}"


def hub_wake(hub_id: str) -> str:
    return f"qt:hub:{hub_id}:wake"


SOCKET_PROCESSES = "qt:socks:procs"
SOCKET_COUNTS_PREFIX = "qt:socks:p:"


def socket_counts(process_id: str) -> str:
    """One process's open WebSockets by client address (its lease: the key's expiry)."""
    return f"{SOCKET_COUNTS_PREFIX}{process_id}"


WEBHOOKS_ENABLED = "qt:webhooks:enabled"


def webhook_sent(url_id: str, delivery: str) -> str:
    """Set once a webhook job for (URL, event) is enqueued: a replayed batch adds nothing."""
    return f"qt:hook:{url_id}:{delivery}"


AUDIT = "qt:audit"  # staff audit entries on their way to SQLite (record/audit.py)


# ABDM Scan & Share (qtraq_live/abdm/)
ABDM_SESSION = "qt:abdm:session"  # the gateway's access token, expiring with it


def abdm_share(digest: str) -> str:
    """One (hipId, counter, ABHA address) for 30 minutes: a repeat share gets the same ticket."""
    return f"qt:abdm:share:{digest}"


def abdm_reply(request_id: str) -> str:
    """The on-share reply to one inbound REQUEST-ID (hash: body, state): sent once."""
    return f"qt:abdm:reply:{request_id}"


def inbound_seen(channel: str, message_id: str) -> str:
    """Set once a patient's message is handled: a gateway's retry of it changes nothing."""
    return f"qt:inbound:{channel}:{secret_hash(message_id)[:40]}"


PUSH_VAPID = "qt:push:vapid"


def push_subscription(ticket_id: int | str) -> str:
    return f"qt:push:{ticket_id}"


def clinic_languages(c: str) -> str:
    return f"qt:speech:langs:{c}"


def payment(c: str) -> str:
    return f"qt:pay:{c}"


def oidc_state(state_hash: str) -> str:
    return f"qt:oidc:{state_hash}"


DEMO_OUTBOX = "qt:demo:outbox"  # the demo's verification codes, shown at /demo/outbox (web/demo_outbox.py)
