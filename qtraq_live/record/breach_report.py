"""``qtraq-live breach-report --from --to``: who and what a personal data breach in a time window
may have touched, with what the DPDP Rules ask for (rule 7): a notice to each affected person,
filled in and in that person's language, and the report to the Data Protection Board (within
72 hours). ``--send`` queues the notices; without it the command only prints. The runbook is
in docs/privacy.md.

Affected people are those whose personal data the record held during the window: accounts
(created before its end) and walk-in contacts (kept at some point in it), each with the data
categories held. The security log adds what happened in the window (logins, failures, exports,
erasures, staff access changes), by pseudonymous subject. The output holds contacts (to send
the notices): it goes to the operator's terminal, never to a log.

A breach notice is a legal duty, not a service the person opted into: like the security
notices (``accounts/broadcast.py``) it needs no consent and has no switch. It goes through the
notifier's exactly-once ledger, one per (incident, person, contact): running ``--send`` again
for the same window sends nothing twice.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as aioredis

from ..accounts import notices as account_notices
from ..accounts.broadcast import security_subject
from ..config import Settings
from ..errors import Invalid
from ..workers.notices import enqueue_account_notice
from ..workers.render import render
from . import security_log
from .store import Store

log = logging.getLogger(__name__)

Json = dict[str, Any]
DAY_MS = 86_400_000
BOARD_HOURS = 72
KIND = "security_breach"  # the notice template (workers/templates/notices/{lang}/security_breach.txt)
# The data categories a person's record can hold; the notice template names each in every language.
ACCOUNT_CATEGORIES = ("identity", "contact", "password_hash", "consent", "sessions")
CATEGORIES = (*ACCOUNT_CATEGORIES, "health_profile", "appointments", "nominee", "name")
NATURES = ("access", "disclosure", "loss")  # unauthorised access, unauthorised disclosure, loss
MEASURES = ("access_revoked", "sessions_ended", "passwords_reset", "keys_rotated", "weakness_fixed", "cert_in")
UNSET_FIDUCIARY = "<set privacy.fiduciary>"
UNSET_GRIEVANCE = "<set privacy.grievance_contact>"
WHEN = "%Y-%m-%d %H:%M"  # the window in the notice (UTC, said by the text)
# The report to the Board is in English: the wording of each category, nature and measure there.
BOARD_WORDS = {
    "identity": "name and date of birth", "contact": "mobile number and email", "password_hash": "password hashes",
    "consent": "consent records", "sessions": "login history (time, IP address, device)",
    "health_profile": "linked patients' health profiles", "appointments": "appointments",
    "nominee": "nominee details", "name": "walk-in patients' names",
    "access": "unauthorised access", "disclosure": "unauthorised disclosure", "loss": "loss or destruction of data",
    "access_revoked": "the access involved was withdrawn", "sessions_ended": "every login session was ended",
    "passwords_reset": "passwords were reset", "keys_rotated": "keys and secrets were changed",
    "weakness_fixed": "the weakness exploited was fixed", "cert_in": "CERT-In was informed",
}


def parse_when(field: str, text: str) -> int:
    """An ISO date or date-time (UTC when no offset) as epoch ms."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(field, "must be an ISO date or date-time, e.g. 2027-05-13 or 2027-05-13T09:30") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def parse_incident(nature: str | None, measures: str | None) -> tuple[str | None, list[str]]:
    """``--nature`` and ``--measures`` (a comma-separated list) checked against what a notice can say."""
    if nature is not None and nature not in NATURES:
        raise Invalid("--nature", f"must be one of {', '.join(NATURES)}")
    chosen = [m.strip() for m in (measures or "").split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MEASURES]
    if unknown:
        raise Invalid("--measures", f"unknown {', '.join(unknown)}; choose from {', '.join(MEASURES)}")
    return nature, list(dict.fromkeys(chosen))


async def build(store: Store, settings: Settings, from_ms: int, to_ms: int, *, nature: str | None = None,
                measures: tuple[str, ...] | list[str] = (), aware_ms: int | None = None) -> Json:
    """The report: affected people (each with the notice to send, rendered in their language),
    the security events, and the drafts. ``aware_ms``: when the clinic became aware (the
    Board's 72 hours run from it; now when not given)."""
    if from_ms > to_ms:
        raise Invalid("--from", "must not be after --to")
    walkin_ms = settings["privacy.walkin_contact_days"] * DAY_MS
    accounts = await store.fetchall(
        "SELECT a.id, a.email, a.mobile, a.email_verified, a.mobile_verified, a.lang,"
        " (SELECT count(*) FROM patients p WHERE p.account_id = a.id) AS patients,"
        " (SELECT count(*) FROM appointments ap WHERE ap.account_id = a.id) AS appointments,"
        " (SELECT count(*) FROM nominees n WHERE n.account_id = a.id) AS nominee"
        " FROM accounts a WHERE a.created_at <= ? ORDER BY a.id", (to_ms,))
    walk_ins = await store.fetchall(
        "SELECT c.ticket_id, c.mobile, c.email, t.lang, t.name IS NOT NULL AS named, k.name AS clinic"
        " FROM ticket_contacts c LEFT JOIN tickets t ON t.id = c.ticket_id LEFT JOIN clinics k ON k.id = t.clinic"
        " WHERE c.created_at <= ? AND c.created_at >= ? ORDER BY c.ticket_id", (to_ms, from_ms - walkin_ms))
    clinic_names = [r["name"] for r in await store.fetchall("SELECT name FROM clinics ORDER BY created_at, id")]
    every_clinic = settings["privacy.fiduciary"] or ", ".join(clinic_names) or UNSET_FIDUCIARY
    window = {"start": _when(from_ms), "end": _when(to_ms)}
    incident = {"nature": nature or "", "measures": list(measures),
                "grievance": settings["privacy.grievance_contact"] or UNSET_GRIEVANCE}
    people: list[Json] = []
    for a in accounts:
        categories = list(ACCOUNT_CATEGORIES)
        categories += [c for c, n in (("health_profile", a["patients"]), ("appointments", a["appointments"]),
                                      ("nominee", a["nominee"])) if n]
        contacts = [(ch, a[ch]) for ch in ("email", "mobile") if a[ch] and a[f"{ch}_verified"]]
        people.append(_person("account", security_log.pseudonym(settings.secret_key, "account", a["id"]),
                              f"acct{a['id']}:", security_subject(a["id"]), categories, contacts,
                              a["lang"] or settings["notify.default_lang"],
                              {**window, **incident, "fiduciary": every_clinic}))
    for w in walk_ins:
        contacts = [(ch, w[ch]) for ch in ("email", "mobile") if w[ch]]
        categories = ["name", "contact"] if w["named"] else ["contact"]
        fiduciary = settings["privacy.fiduciary"] or w["clinic"] or every_clinic
        people.append(_person("walk_in", f"ticket:{w['ticket_id']}", f"t{w['ticket_id']}:",
                              f"ticket:{w['ticket_id']}:security", categories, contacts,
                              w["lang"] or settings["notify.default_lang"],
                              {**window, **incident, "fiduciary": fiduciary}))
    events = await security_log.entries(store, from_ms, to_ms)
    counts: dict[str, int] = {}
    for e in events:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
    categories = [c for c in CATEGORIES if any(c in p["categories"] for p in people)]
    aware = aware_ms if aware_ms is not None else _now_ms()
    english = {**window, **incident, "fiduciary": every_clinic, "categories": categories}
    return {
        "window": {"from": _iso(from_ms), "to": _iso(to_ms)},
        "incident": {"id": _incident_id(from_ms, to_ms), "nature": nature, "measures": list(measures),
                     "aware_at": _iso(aware)},
        "generated_at": _iso(_now_ms()),
        "board_report_due": _iso(aware + BOARD_HOURS * 3_600_000),
        "affected": {"accounts": len(accounts), "walk_ins": len(walk_ins), "categories": categories},
        "security_events": counts,
        "people": people,
        "notice_draft": render(KIND, "en", english)[1],
        "board_report_draft": _board_report(settings, every_clinic, from_ms, to_ms, aware, len(people),
                                            categories, counts, nature, measures),
    }


def _person(kind: str, subject: str, key_prefix: str, consent_subject: str, categories: list[str],
            contacts: list[tuple[str, str]], lang: str, context: Json) -> Json:
    context = {**context, "categories": categories}
    title, text = render(KIND, lang, context)
    return {"kind": kind, "subject": subject, "categories": categories,
            "notify": [{"channel": ch, "to": to} for ch, to in contacts], "lang": lang,
            "notice": {"subject": title, "text": text},
            # for --send (not printed): the ledger key's prefix (erasure finds an account's notices by it),
            # the consent subject (never opted out), the template's context
            "_send": {"prefix": key_prefix, "consent": consent_subject, "context": context}}


def _now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime(WHEN)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _incident_id(from_ms: int, to_ms: int) -> str:
    """One breach = one window: the same window sends each notice once, however often it is run."""
    return f"breach{from_ms}-{to_ms}"


def _board_report(settings: Settings, fiduciary: str, from_ms: int, to_ms: int, aware_ms: int, people: int,
                  categories: list[str], counts: dict[str, int], nature: str | None,
                  measures: tuple[str, ...] | list[str]) -> str:
    contact = settings["privacy.grievance_contact"] or UNSET_GRIEVANCE
    lines = [
        "# Personal data breach: report to the Data Protection Board of India (DPDP Rules, rule 7)",
        "",
        f"- Data Fiduciary: {fiduciary}",
        f"- Nature of the breach: {BOARD_WORDS[nature] if nature else '<give --nature>'}",
        f"- Window examined: {_iso(from_ms)} to {_iso(to_ms)}; became aware: {_iso(aware_ms)}",
        f"- Data Principals whose data was held in the window: {people}",
        f"- Categories of personal data: {', '.join(BOARD_WORDS[c] for c in categories) or 'none'}",
        f"- Security log events in the window: {json.dumps(counts, sort_keys=True)}",
        "- Extent, timing and location: <systems, records, when detected, where>",
        "- Likely impact on Data Principals: unwanted calls or messages, attempts to deceive them; <assessment>",
        f"- Measures taken to mitigate the risk: {'; '.join(BOARD_WORDS[m] for m in measures) or '<give --measures>'}",
        "- Measures Data Principals can take: see the notice sent to them (be wary of calls or messages about "
        "their visit, never share a one-time code, change their password)",
        f"- Contact (grievance officer / person able to answer): {contact}",
        f"- Detailed report with the findings, due within {BOARD_HOURS} hours of becoming aware: "
        f"{_iso(aware_ms + BOARD_HOURS * 3_600_000)}",
    ]
    return "\n".join(lines) + "\n"


async def send(redis: aioredis.Redis, settings: Settings, report: Json) -> Json:
    """Queue the notice to every contact of every affected person through the exactly-once
    ledger. Returns ``{"queued": n, "people": n, "unreachable": n}`` (unreachable: no
    contact, or no channel configured for it)."""
    unset = {v for p in report["people"] for v in (p["_send"]["context"]["fiduciary"], p["_send"]["context"]["grievance"])
             if v in (UNSET_FIDUCIARY, UNSET_GRIEVANCE)}
    if unset:  # a notice must name the fiduciary and whom to ask: nothing goes out half filled in
        raise Invalid("--send", f"the notices are not complete: {', '.join(sorted(unset))}")
    queued = reached = 0
    for person in report["people"]:
        sent = 0
        for contact in person["notify"]:
            channel = account_notices.contact_channel(contact["channel"], settings)
            if channel is None:
                continue
            prefix, consent, context = (person["_send"][k] for k in ("prefix", "consent", "context"))
            await enqueue_account_notice(
                redis, kind=KIND, to=contact["to"], channel=channel, context=context, lang=person["lang"],
                dedupe_key=f"{prefix}{report['incident']['id']}:{contact['channel']}", subject=consent)
            sent += 1
        queued += sent
        reached += bool(sent)
    log.info("breach notices: %d queued to %d people", queued, reached)  # counts only: no contacts in logs
    return {"queued": queued, "people": reached, "unreachable": len(report["people"]) - reached}


def public(report: Json) -> Json:
    """The report without what only ``send`` needs (for ``--json``)."""
    return {**report, "people": [{k: v for k, v in p.items() if k != "_send"} for p in report["people"]]}


def markdown(report: Json) -> str:
    """The report for the operator's terminal: the people, each distinct notice once (with how
    many people it goes to), and the report to the Board."""
    out = [f"Breach report for {report['window']['from']} .. {report['window']['to']}",
           f"Report to the Board due by: {report['board_report_due']} ({BOARD_HOURS} hours from becoming aware)",
           f"Affected: {report['affected']['accounts']} accounts, {report['affected']['walk_ins']} walk-ins; "
           f"categories: {', '.join(report['affected']['categories']) or 'none'}",
           f"Security events in the window: {json.dumps(report['security_events'], sort_keys=True)}", "",
           "People to notify (subject, language, categories, contacts):"]
    notices: dict[tuple[str, str, str], int] = {}
    for p in report["people"]:
        to = ", ".join(f"{n['channel']} {n['to']}" for n in p["notify"]) or "no verified contact"
        out.append(f"  {p['subject']}  {p['lang']}  [{', '.join(p['categories'])}]  {to}")
        if p["notify"]:
            shown = (p["lang"], p["notice"]["subject"], p["notice"]["text"])
            notices[shown] = notices.get(shown, 0) + 1
    out += ["", "--- the notices, ready to send (--send queues them) ---"]
    for (lang, subject, text), n in notices.items():
        out += [f"[{lang}, {n} {'person' if n == 1 else 'people'}] {subject}", text, ""]
    out += ["--- notice in English (e.g. for the website, for people without a contact) ---",
            report["notice_draft"], "", "--- report to the Board (draft) ---", report["board_report_draft"]]
    return "\n".join(out)
