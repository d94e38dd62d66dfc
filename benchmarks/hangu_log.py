"""A real consultation log in the replay's format (``benchmarks/eta.py --log``).

    python benchmarks/hangu_log.py Raw_1.csv hangu.csv
    python benchmarks/eta.py --log hangu.csv --json hangu.json

The source is the Hangu clinic's open data: 6,853 consultations of one physician over 381
half-day sessions in 2018-2019, described in Feng, Jia, Zhou, Chen and Huang, "A Dataset of
Service Time and Related Patient Characteristics from an Outpatient Clinic", *Data* 8(3):47
(2023), https://doi.org/10.3390/data8030047, file ``Raw_1.csv`` of
https://github.com/fenghaolin/HanguData. Its licence (CC BY-NC-SA 4.0) does not fit this
repository's, so the data is not committed: fetch it and convert it with this script.

Per row it has ``Session`` (numbered in date order), ``DayOfWeek``, ``Visit.No`` (the patient's
visit count for the condition: 1 is a first visit) and ``StartTime`` (``H:MM:SS``, the
consultation's start). ``PayTime`` (when the patient paid, after the consultation) is not its
end, so no ``end`` is written. There are no arrival times: the replay takes every patient of a
session as waiting from its first start, as the issue specifies.

Written: ``session,start,weekday,new`` -- ``weekday`` 0 (Monday) to 6, so the replay puts each
session on its own weekday; ``new`` 1 for a first visit, 0 for a returning patient, empty where the log does not say (``NA``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HEADER = ("session", "start", "weekday", "new")


def convert(source: Path, target: Path) -> int:
    """Writes ``target`` from the Hangu ``Raw_1.csv`` at ``source``; returns the rows written."""
    with source.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"Session", "DayOfWeek", "Visit.No", "StartTime"} - set(rows[0] if rows else ())
    if missing:
        raise SystemExit(f"{source}: not the Hangu log (no {', '.join(sorted(missing))})")
    with target.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for r in rows:
            visits = r["Visit.No"].strip()
            w.writerow([r["Session"], r["StartTime"], WEEKDAYS.index(r["DayOfWeek"]),
                        "" if not visits.isdigit() else int(visits == "1")])
    return len(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="Raw_1.csv of github.com/fenghaolin/HanguData")
    ap.add_argument("target", type=Path, help="the log to write (session,start,weekday,new)")
    a = ap.parse_args()
    print(f"{convert(a.source, a.target)} consultations written to {a.target}")
