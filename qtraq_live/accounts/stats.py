"""De-identified queue statistics for a clinic: served, waits, service times, no-shows.

Computed from the ticket record's times and statuses only (never a name, contact or token),
grouped by hour of the day, by day in the clinic's timezone and by how the ticket came
(``source``: desk, self check-in, appointment, import, ABDM Scan & Share). A bucket with fewer than
:data:`MIN_PEOPLE` tickets is suppressed, so no figure describes one or two identifiable
visits. Tickets of accounts that did not consent to analytics are left out.

Complementary suppression: the tickets of a suppressed bucket are left out of every other
figure too (the total, and the buckets of the other grouping), repeated until no bucket is
under the threshold, so no suppressed figure can be recovered by subtracting the shown ones
from a total (issue #21 item 12). Shown figures therefore count only the tickets in buckets
large enough to show.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import Invalid, NotFound
from ..queue_engine import SOURCES
from ..record.store import Store

Json = dict[str, Any]
MIN_PEOPLE = 5
DEFAULT_DAYS = 30
MAX_DAYS = 366
FINISHED = ("done", "no_show")

# Ticket ids of appointments whose account's newest consent says no to analytics.
_NO_ANALYTICS = """
    SELECT ap.ticket_id FROM appointments ap
    WHERE ap.ticket_id IS NOT NULL AND ap.account_id IS NOT NULL AND NOT coalesce((
        SELECT h.analytics FROM account_consent_history h WHERE h.account_id = ap.account_id
        ORDER BY h.id DESC LIMIT 1), 0)
"""


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def parse_range(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """``from``/``to`` as clinic days (inclusive); default the last 30 days."""
    try:
        to_day = date.fromisoformat(end) if end else today
    except ValueError:
        raise Invalid("to", "must be a date YYYY-MM-DD") from None
    try:
        from_day = date.fromisoformat(start) if start else to_day - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise Invalid("from", "must be a date YYYY-MM-DD") from None
    if from_day > to_day:
        raise Invalid("from", "must not be after to")
    if (to_day - from_day).days >= MAX_DAYS:
        raise Invalid("from", f"the range may cover at most {MAX_DAYS} days")
    return from_day, to_day


def summarise(tickets: Iterable[Json]) -> Json:
    """One bucket's figures, or ``{"suppressed": true}`` under the threshold."""
    rows = list(tickets)
    if len(rows) < MIN_PEOPLE:
        return {"suppressed": True}
    waits = [(t["called_at"] - t["created_at"]) / 1000 for t in rows if t["called_at"] and t["created_at"]]
    services = [(t["done_at"] - (t["served_at"] or t["called_at"])) / 1000 for t in rows
                if t["status"] == "done" and t["done_at"] and (t["served_at"] or t["called_at"])]
    finished = [t for t in rows if t["status"] in FINISHED]
    no_shows = sum(1 for t in finished if t["status"] == "no_show")

    def rounded(v: float | None) -> int | None:
        return None if v is None else int(round(v))

    return {
        "suppressed": False, "tickets": len(rows), "served": sum(1 for t in rows if t["status"] == "done"),
        "wait_p50_s": rounded(percentile(waits, 50)), "wait_p90_s": rounded(percentile(waits, 90)),
        "service_p50_s": rounded(percentile(services, 50)), "service_p90_s": rounded(percentile(services, 90)),
        "no_show_rate": round(no_shows / len(finished), 3) if finished else None,
    }


def publishable(rows: list[Json], groupings: list[Callable[[Json], Any]]) -> list[Json]:
    """The rows left once every bucket (of any grouping) under :data:`MIN_PEOPLE` has had its
    rows removed from all groupings, repeated until none is under (complementary suppression)."""
    kept = rows
    while True:
        small = [{k for k, n in Counter(g(t) for t in kept).items() if k is not None and n < MIN_PEOPLE}
                 for g in groupings]
        if not any(small):
            return kept
        kept = [t for t in kept if not any(g(t) in s for g, s in zip(groupings, small))]


async def clinic_stats(store: Store, clinic_id: str, start: str | None, end: str | None, now_ms: int) -> Json:
    clinic = await store.fetchone("SELECT timezone FROM clinics WHERE id = ?", (clinic_id,))
    if clinic is None:
        raise NotFound("unknown clinic")
    tz = ZoneInfo(clinic["timezone"])
    from_day, to_day = parse_range(start, end, datetime.fromtimestamp(now_ms / 1000, tz=tz).date())
    rows = await store.fetchall(
        "SELECT status, created_at, called_at, served_at, done_at, day, source FROM tickets"
        f" WHERE clinic = ? AND day BETWEEN ? AND ? AND id NOT IN ({_NO_ANALYTICS})",
        (clinic_id, from_day.strftime("%Y%m%d"), to_day.strftime("%Y%m%d")))
    def hour_of(t: Json) -> int | None:
        return datetime.fromtimestamp(t["created_at"] / 1000, tz=tz).hour if t["created_at"] else None

    def day_of(t: Json) -> str:
        return f"{t['day'][:4]}-{t['day'][4:6]}-{t['day'][6:]}"

    kept = publishable(list(rows), [hour_of, day_of])
    by_hour: dict[int, list[Json]] = {h: [] for t in rows if (h := hour_of(t)) is not None}
    by_day: dict[str, list[Json]] = {day_of(t): [] for t in rows}
    by_source: dict[str, list[Json]] = {source: [] for source in SOURCES}
    for t in kept:
        by_source.setdefault(t["source"], []).append(t)
        if (hour := hour_of(t)) is not None:
            by_hour[hour].append(t)
        by_day[day_of(t)].append(t)
    appts = await store.fetchall(
        "SELECT status, count(*) AS n FROM appointments WHERE clinic = ? AND date BETWEEN ? AND ?"
        " AND status IN ('checked_in', 'no_show') GROUP BY status",
        (clinic_id, from_day.isoformat(), to_day.isoformat()))
    counts = {a["status"]: a["n"] for a in appts}
    appt_total = sum(counts.values())
    return {
        "clinic": clinic_id, "from": from_day.isoformat(), "to": to_day.isoformat(),
        "timezone": clinic["timezone"], "min_bucket": MIN_PEOPLE,
        "total": summarise(kept),
        "appointments": ({"suppressed": True} if appt_total < MIN_PEOPLE else
                         {"suppressed": False, "due": appt_total,
                          "no_show_rate": round(counts.get("no_show", 0) / appt_total, 3)}),
        "by_hour": [{"hour": h, **summarise(by_hour[h])} for h in sorted(by_hour)],
        "by_day": [{"date": d, **summarise(by_day[d])} for d in sorted(by_day)],
        "by_source": [{"source": src, **summarise(by_source[src])} for src in by_source],
    }


CSV_COLUMNS = ("bucket", "key", "suppressed", "tickets", "served", "wait_p50_s", "wait_p90_s",
               "service_p50_s", "service_p90_s", "no_show_rate")


def to_csv(stats: Json) -> str:
    """One row per bucket (total, each hour, each day); suppressed rows carry no figures."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerow({"bucket": "total", "key": f"{stats['from']}..{stats['to']}", **stats["total"]})
    for row in stats["by_hour"]:
        writer.writerow({"bucket": "hour", "key": f"{row['hour']:02d}", **row})
    for row in stats["by_day"]:
        writer.writerow({"bucket": "day", "key": row["date"], **row})
    for row in stats["by_source"]:
        writer.writerow({"bucket": "source", "key": row["source"], **row})
    return out.getvalue()
