"""Feedback after a visit: one rating (1–5, optional comment) per finished ticket, and the
admin's aggregates per queue and day.

A rating row holds the ticket id, clinic, queue, day, rating and comment, and nothing that
names the patient; aggregates over fewer than ``stats.MIN_PEOPLE`` ratings are suppressed like
every other stat, comments included (a comment in a bucket of one points at one visit).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import Conflict
from ..queue_engine import iso
from ..record.store import Store
from ..validation import Field, Schema
from .stats import MIN_PEOPLE, parse_range

Json = dict[str, Any]
COMMENT_MAX = 500
RATINGS = (1, 2, 3, 4, 5)
BODY = Schema({
    "rating": Field("integer", required=True, minimum=1, maximum=5, description="1 (poor) to 5 (excellent)"),
    "comment": Field("string", nullable=True, max_length=COMMENT_MAX),
})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
CSV_COLUMNS = ("queue", "day", "suppressed", "count", "mean", "r1", "r2", "r3", "r4", "r5", "comments")


def clean_comment(text: str | None) -> str | None:
    """Control characters out, whitespace trimmed; empty becomes None."""
    if text is None:
        return None
    text = _CONTROL.sub(" ", text).strip()
    return text or None


async def rate(store: Store, ticket: Json, body: Json, timezone: str, window_days: int, now_ms: int) -> Json:
    """Record one rating for a ``done`` ticket (409 otherwise, and 409 the second time)."""
    if ticket["status"] != "done":
        raise Conflict("the visit can be rated once it is done", code="not_done")
    done_ms = _ms(ticket.get("done_at")) or now_ms
    if now_ms - done_ms > window_days * 86_400_000:
        raise Conflict(f"visits can be rated for {window_days} days", code="feedback_closed")
    day = datetime.fromtimestamp(done_ms / 1000, ZoneInfo(timezone)).date().isoformat()
    async with store.transaction() as db:
        if await db.fetchone("SELECT 1 FROM feedback WHERE ticket_id = ?", (ticket["id"],)):
            raise Conflict("this visit is already rated", code="already_rated")
        await db.execute("INSERT INTO feedback (ticket_id, clinic, queue, day, rating, comment, created_at)"
                         " VALUES (?,?,?,?,?,?,?)", (ticket["id"], ticket["clinic"], ticket["queue"], day,
                                                     body["rating"], clean_comment(body.get("comment")), now_ms))
    return {"rating": body["rating"], "rated_at": iso(now_ms)}


def _ms(stamp: str | None) -> int | None:
    if not stamp:
        return None
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def _bucket(ratings: list[tuple[int, str | None]]) -> Json:
    if len(ratings) < MIN_PEOPLE:
        return {"suppressed": True}
    values = [r for r, _ in ratings]
    return {"suppressed": False, "count": len(values), "mean": round(sum(values) / len(values), 2),
            "distribution": {str(k): values.count(k) for k in RATINGS},
            "comments": [c for _, c in ratings if c]}


async def aggregates(store: Store, clinic: str, day_from: str | None, day_to: str | None, today: date) -> Json:
    """Per queue and day, and per queue over the range: count, mean, distribution, comments."""
    start, end = parse_range(day_from, day_to, today)
    rows = await store.fetchall("SELECT queue, day, rating, comment FROM feedback WHERE clinic = ? AND day BETWEEN"
                                " ? AND ? ORDER BY queue, day, created_at", (clinic, start.isoformat(), end.isoformat()))
    by_day: dict[tuple[str, str], list[tuple[int, str | None]]] = {}
    by_queue: dict[str, list[tuple[int, str | None]]] = {}
    for r in rows:
        by_day.setdefault((r["queue"], r["day"]), []).append((r["rating"], r["comment"]))
        by_queue.setdefault(r["queue"], []).append((r["rating"], r["comment"]))
    return {
        "clinic": clinic, "from": start.isoformat(), "to": end.isoformat(), "min_bucket": MIN_PEOPLE,
        "by_day": [{"queue": q, "day": d, **_bucket(v)} for (q, d), v in sorted(by_day.items())],
        "by_queue": [{"queue": q, **_bucket(v)} for q, v in sorted(by_queue.items())],
    }


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ is quoted with '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(data: Json) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for b in data["by_day"]:
        dist = b.get("distribution", {})
        writer.writerow([_cell(v) for v in (
            b["queue"], b["day"], b["suppressed"], b.get("count"), b.get("mean"),
            *(dist.get(str(k)) for k in RATINGS), " | ".join(_cell(c) for c in b.get("comments", [])))])
    return out.getvalue()


async def daily_means(store: Store, clinic: str, start: date, days: int) -> list[tuple[str, float]]:
    """``(day, mean rating)`` over the whole clinic for each day; 0 where suppressed or none."""
    end = start + timedelta(days=days - 1)
    rows = await store.fetchall("SELECT day, count(*) AS n, avg(rating) AS mean FROM feedback WHERE clinic = ?"
                                " AND day BETWEEN ? AND ? GROUP BY day", (clinic, start.isoformat(), end.isoformat()))
    found = {r["day"]: (r["mean"] if r["n"] >= MIN_PEOPLE else 0.0) for r in rows}
    return [(d, round(found.get(d, 0.0), 2)) for d in
            ((start + timedelta(days=i)).isoformat() for i in range(days))]


async def forget_comments(store: Store, ticket_ids: list[int]) -> None:
    """Erasure: the comments on an account's visits go (ratings stay, de-identified)."""
    if ticket_ids:
        marks = ",".join("?" * len(ticket_ids))
        await store.execute(f"UPDATE feedback SET comment = NULL WHERE ticket_id IN ({marks})", ticket_ids)
