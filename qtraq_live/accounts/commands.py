"""The accounts area's console commands: ``qtraq-live purge`` and ``qtraq-live import
appointments FILE.csv [--dry-run]`` (listed in ``cli.COMMANDS``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..abdm import records as abdm_records
from ..config import Settings
from ..errors import Invalid
from ..runtime.offline import run_offline
from .importer import import_csv
from .privacy import purge


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    removed = run_offline(settings, lambda ctx: purge(ctx.store, ctx.redis, settings, int(time.time() * 1000)))
    removed.update({f"abdm_{k}": v for k, v in run_offline(settings, lambda ctx: abdm_records.purge(
        ctx.store, ctx.redis, settings["abdm.profile_days"], int(time.time() * 1000))).items()})
    print("retention policy applied: " + ", ".join(f"{k} {v}" for k, v in removed.items()))
    return 0


def import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="CSV with the header name,mobile,email,queue,date,slot")
    p.add_argument("--dry-run", action="store_true", help="check every row, write nothing")


def cmd_import_appointments(args: argparse.Namespace, settings: Settings) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid("FILE", f"cannot read {args.file}: {exc}") from None
    report = run_offline(settings, lambda ctx: import_csv(ctx.store, ctx.engine, text, int(time.time() * 1000),
                                                          dry_run=args.dry_run))
    for error in report.errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    if report.errors:
        print(f"{len(report.errors)} bad row(s) in {report.rows}; nothing imported", file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"{report.rows} row(s) checked, all good (dry run: nothing imported)")
    else:
        print(f"{report.imported} appointment(s) imported")
    return 0
