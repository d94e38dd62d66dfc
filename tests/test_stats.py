"""De-identified clinic statistics: figures from ticket times only, small buckets suppressed,
CSV export, admin only, and visits of accounts without analytics consent left out."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import datetime, timezone

import pytest

from qtraq_live.accounts.stats import MIN_PEOPLE, percentile
from tests.support_accounts import portal, register  # noqa: F401
from tests.support_http import LiveServer, error_of

D1, D2 = "2026-03-02", "2026-03-03"


def _ms(day: str, hour: int, minute: int = 0, second: int = 0) -> int:
    y, m, d = map(int, day.split("-"))
    return int(datetime(y, m, d, hour, minute, second, tzinfo=timezone.utc).timestamp() * 1000)


def _ticket(db: sqlite3.Connection, tid: int, day: str, hour: int, status: str, wait_s: int, service_s: int,
            name: str = "Secret Person", source: str = "reception") -> None:
    created = _ms(day, hour, 0, tid % 50)
    called = created + wait_s * 1000
    done = called + service_s * 1000 if status == "done" else None
    db.execute("INSERT INTO tickets (id, clinic, queue, label, status, score, name, day, created_at, called_at,"
               " done_at, source) VALUES (?, 'c1', 'gp', ?, ?, '0', ?, ?, ?, ?, ?, ?)",
               (tid, f"A-{tid:03d}", status, name, day.replace("-", ""), created, called, done, source))


@pytest.fixture
def record(portal: LiveServer) -> LiveServer:
    """Twelve served and two no-shows at 09:00 on D1, three at 14:00 on D1, four on D2 (UTC clinic);
    the four on D2 and two at 14:00 came by ABHA Scan & Share, one at 14:00 by self check-in."""
    with portal.db() as db:
        db.execute("INSERT INTO clinics (id, name, timezone) VALUES ('c1', 'Clinic c1', 'UTC')")
        for i in range(12):
            _ticket(db, i + 1, D1, 9, "done", wait_s=60 * (i + 1), service_s=300)
        for i in range(2):
            _ticket(db, 20 + i, D1, 9, "no_show", wait_s=600, service_s=0)
        for i in range(3):
            _ticket(db, 30 + i, D1, 14, "done", wait_s=100, service_s=100, source="abdm" if i else "self")
        for i in range(4):
            _ticket(db, 40 + i, D2, 11, "done", wait_s=100, service_s=100, source="abdm")
    return portal


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert (percentile(values, 50), percentile(values, 90), percentile([], 50)) == (5.0, 9.0, None)


def test_stats_by_hour_and_day_with_small_buckets_suppressed(record: LiveServer) -> None:
    admin = record.staff("admin")
    r = admin.get("/clinics/c1/stats", params={"from": D1, "to": D2})
    assert r.status_code == 200, r.text
    stats = r.json()
    total = stats["total"]
    # complementary suppression: the 7 tickets of suppressed buckets are in no shown figure
    assert (total["tickets"], total["served"]) == (14, 12)
    assert total["no_show_rate"] == round(2 / 14, 3)
    nine = next(b for b in stats["by_hour"] if b["hour"] == 9)
    assert (nine["tickets"], nine["served"], nine["wait_p50_s"], nine["wait_p90_s"]) == (14, 12, 420, 660)
    assert (nine["service_p50_s"], nine["service_p90_s"], nine["no_show_rate"]) == (300, 300, round(2 / 14, 3))
    assert next(b for b in stats["by_hour"] if b["hour"] == 14) == {"hour": 14, "suppressed": True}
    assert [(d["date"], d["suppressed"]) for d in stats["by_day"]] == [(D1, False), (D2, True)]
    assert stats["min_bucket"] == MIN_PEOPLE
    assert "Secret Person" not in r.text and "name" not in r.text and "A-001" not in r.text


def test_stats_break_down_by_how_tickets_came(record: LiveServer) -> None:
    stats = record.staff("admin").get("/clinics/c1/stats", params={"from": D1, "to": D2}).json()
    by_source = {b["source"]: b for b in stats["by_source"]}
    assert list(by_source) == ["reception", "self", "appointment", "import", "abdm"]
    # Counted over the tickets the hour and day breakdowns publish (complementary suppression): the
    # six ABHA tickets all fall in a suppressed hour, so their bucket is not published either.
    assert by_source["reception"]["tickets"] == 14 == stats["total"]["tickets"]
    assert by_source["reception"]["served"] == stats["total"]["served"]
    assert by_source["abdm"] == {"source": "abdm", "suppressed": True}
    assert by_source["self"] == {"source": "self", "suppressed": True}  # one visit: never published


def test_stats_as_csv(record: LiveServer) -> None:
    r = record.staff("admin").get("/clinics/c1/stats", params={"from": D1, "to": D2, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["bucket"] == "total" and rows[0]["tickets"] == "14"
    suppressed = [row for row in rows if row["suppressed"] == "True"]
    assert {(row["bucket"], row["key"]) for row in suppressed} == {
        ("hour", "11"), ("hour", "14"), ("day", D2),
        ("source", "self"), ("source", "appointment"), ("source", "import"), ("source", "abdm")}
    by_source = {row["key"]: row["tickets"] for row in rows if row["bucket"] == "source"}
    assert by_source["reception"] == "14"
    assert all(row["tickets"] == "" and row["wait_p50_s"] == "" for row in suppressed)


def test_stats_leave_out_accounts_without_analytics_consent(record: LiveServer) -> None:
    admin = record.staff("admin")
    before = admin.get("/clinics/c1/stats", params={"from": D1, "to": D2}).json()["total"]["tickets"]
    p = register(record, consent={"notifications": False, "analytics": False, "marketing": False})
    q = register(record, consent={"notifications": False, "analytics": True, "marketing": False})
    with record.db() as db:
        for acct, tid in ((p, 1), (q, 2)):
            db.execute("INSERT INTO appointments (account_id, clinic, queue, date, at_ms, no_show_at, status,"
                       " ticket_id, created_at, updated_at) VALUES (?, 'c1', 'gp', ?, 0, 0, 'checked_in', ?, 0, 0)",
                       (acct.id, D1, tid))
    assert admin.get("/clinics/c1/stats", params={"from": D1, "to": D2}).json()["total"]["tickets"] == before - 1


def test_stats_are_for_admins_and_check_their_parameters(record: LiveServer) -> None:
    assert error_of(record.staff("reception").get("/clinics/c1/stats")) == (403, "forbidden")
    admin = record.staff("admin")
    assert error_of(admin.get("/clinics/nope/stats")) == (404, "not_found")
    for params, field in [({"from": "2026-13-01"}, "from"), ({"to": "yesterday"}, "to"),
                          ({"from": D2, "to": D1}, "from"), ({"from": "2024-01-01", "to": "2026-01-01"}, "from"),
                          ({"format": "xml"}, "format")]:
        r = admin.get("/clinics/c1/stats", params=params)
        assert r.status_code == 422 and field in r.json()["error"]["message"], params
    assert admin.get("/clinics/c1/stats").json()["total"] == {"suppressed": True}  # nothing in the last 30 days


def test_suppressed_buckets_cannot_be_recovered_by_subtraction(record: LiveServer) -> None:
    """The attack (issue #21 item 12): total minus the shown buckets used to give the hidden ones
    (21 - 17 on D1 = the 4 tickets of D2). Now every shown figure leaves the hidden tickets out."""
    stats = record.staff("admin").get("/clinics/c1/stats", params={"from": D1, "to": D2}).json()
    shown_hours = sum(b["tickets"] for b in stats["by_hour"] if not b["suppressed"])
    shown_days = sum(b["tickets"] for b in stats["by_day"] if not b["suppressed"])
    assert stats["total"]["tickets"] == shown_hours == shown_days
    assert any(b["suppressed"] for b in stats["by_hour"]) and any(b["suppressed"] for b in stats["by_day"])
