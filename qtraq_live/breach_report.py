"""``qtraq-live breach-report --from --to``: who and what a personal data breach in a time window
may have touched, with the drafts the DPDP Rules ask for (rule 7): a notice to each affected
person and the report to the Data Protection Board (within 72 hours). The runbook is in
docs/privacy.md.

Affected people are those whose personal data the record held during the window: accounts
(created before its end) and walk-in contacts (kept at some point in it), each with the data
categories held. The security log adds what happened in the window (logins, failures, exports,
erasures, staff access changes), by pseudonymous subject. The output holds contacts (to send
the notices): it goes to the operator's terminal, never to a log.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from . import security_log
from .config import Settings
from .errors import Invalid
from .store import Store

Json = dict[str, Any]
DAY_MS = 86_400_000
BOARD_HOURS = 72


def parse_when(field: str, text: str) -> int:
    """An ISO date or date-time (UTC when no offset) as epoch ms."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(field, "must be an ISO date or date-time, e.g. 2027-05-13 or 2027-05-13T09:30") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


async def build(store: Store, settings: Settings, from_ms: int, to_ms: int) -> Json:
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
        "SELECT c.ticket_id, c.mobile, c.email FROM ticket_contacts c WHERE c.created_at <= ? AND c.created_at >= ?"
        " ORDER BY c.ticket_id", (to_ms, from_ms - walkin_ms))
    people: list[Json] = []
    for a in accounts:
        categories = ["identity", "contact", "password_hash", "consent", "sessions"]
        categories += [c for c, n in (("health_profile", a["patients"]), ("appointments", a["appointments"]),
                                      ("nominee", a["nominee"])) if n]
        contacts = [(ch, a[ch]) for ch in ("email", "mobile") if a[ch] and a[f"{ch}_verified"]]
        people.append({"kind": "account", "subject": security_log.pseudonym(settings.secret_key, "account", a["id"]),
                       "categories": categories, "notify": [{"channel": ch, "to": to} for ch, to in contacts],
                       "lang": a["lang"] or "en"})
    for w in walk_ins:
        contacts = [(ch, w[ch]) for ch in ("email", "mobile") if w[ch]]
        people.append({"kind": "walk_in", "subject": f"ticket:{w['ticket_id']}",
                       "categories": ["name", "contact"], "notify": [{"channel": ch, "to": to} for ch, to in contacts],
                       "lang": "en"})
    events = await security_log.entries(store, from_ms, to_ms)
    counts: dict[str, int] = {}
    for e in events:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
    categories = sorted({c for p in people for c in p["categories"]})
    return {
        "window": {"from": _iso(from_ms), "to": _iso(to_ms)},
        "generated_at": _iso(int(datetime.now(timezone.utc).timestamp() * 1000)),
        "board_report_due": _iso(int((datetime.now(timezone.utc) + timedelta(hours=BOARD_HOURS)).timestamp() * 1000)),
        "affected": {"accounts": len(accounts), "walk_ins": len(walk_ins), "categories": categories},
        "security_events": counts,
        "people": people,
        "notice_draft": _notice(settings),
        "board_report_draft": _board_report(settings, from_ms, to_ms, len(people), categories, counts),
    }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _notice(settings: Settings) -> str:
    contact = settings["privacy.grievance_contact"] or "<grievance officer: set privacy.grievance_contact>"
    return (
        "Subject: A security incident that may concern your data\n\n"
        "We are writing to tell you about a personal data breach at our clinic's queue and appointment system.\n"
        "What happened and when: <describe the breach and its time window>.\n"
        "What data of yours may be affected: {categories}.\n"
        "What it may mean for you: <likely consequences, e.g. unwanted calls or messages>.\n"
        "What we have done: <measures taken to stop and limit it>.\n"
        "What you can do: be careful with calls or messages that mention your visit; never share a one-time "
        "code; change your password if you have an account.\n"
        f"Questions: {contact}. You may also complain to the Data Protection Board of India.\n")


def _board_report(settings: Settings, from_ms: int, to_ms: int, people: int, categories: list[str],
                  counts: dict[str, int]) -> str:
    lines = [
        "# Personal data breach: report to the Data Protection Board of India (DPDP Rules, rule 7)",
        "",
        f"- Window examined: {_iso(from_ms)} to {_iso(to_ms)}",
        f"- Data Principals whose data was held in the window: {people}",
        f"- Categories of personal data: {', '.join(categories) or 'none'}",
        f"- Security log events in the window: {json.dumps(counts, sort_keys=True)}",
        "- Nature of the breach: <what happened>",
        "- Extent, timing and location: <systems, records, when detected, where>",
        "- Likely impact on Data Principals: <assessment>",
        "- Measures taken to mitigate the risk: <containment, credentials revoked (qtraq-live user disable, "
        "token revoke), keys rotated>",
        "- Measures Data Principals can take: see the notice sent to them",
        f"- Contact (grievance officer / person able to answer): {settings['privacy.grievance_contact'] or '<set>'}",
        f"- Detailed report with the findings, due within {BOARD_HOURS} hours of becoming aware: <date>",
    ]
    return "\n".join(lines) + "\n"


def markdown(report: Json) -> str:
    """The report for the operator's terminal."""
    out = [f"Breach report for {report['window']['from']} .. {report['window']['to']}",
           f"Report to the Board due by: {report['board_report_due']} (72 hours)",
           f"Affected: {report['affected']['accounts']} accounts, {report['affected']['walk_ins']} walk-ins; "
           f"categories: {', '.join(report['affected']['categories']) or 'none'}",
           f"Security events in the window: {json.dumps(report['security_events'], sort_keys=True)}", "",
           "People to notify (subject, categories, contacts):"]
    for p in report["people"]:
        to = ", ".join(f"{n['channel']} {n['to']}" for n in p["notify"]) or "no verified contact"
        out.append(f"  {p['subject']}  [{', '.join(p['categories'])}]  {to}")
    out += ["", "--- notice draft ---", report["notice_draft"], "--- report to the Board (draft) ---",
            report["board_report_draft"]]
    return "\n".join(out)
