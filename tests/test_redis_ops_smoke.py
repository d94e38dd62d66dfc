"""A tiny run of benchmarks/redis_ops.py (the Redis figures of docs/deploy/README.md, "Sizing"):
the harness runs end to end against real processes. It asserts no figure but one invariant of
the engine: a "next" press is exactly one Lua script call, the change with its audit entry
(lua/engine/); the staff lookup (lua/staff.lua) was made by the press before it and is reused
(auth.CredentialCache)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_redis_ops_counts_one_script_call_per_press() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "redis_ops.py"), "--tickets", "5", "--hubs", "1",
                           "--idle", "0.5"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    sections = dict(re.findall(r"^(\S[^:\n]*): ([\d.]+) commands$", done.stdout, re.M))
    assert set(sections) == {"idle, per second", "per ticket issued", "per press"}
    per_press = dict(re.findall(r"^  (\w+)\s+([\d.]+)$", done.stdout.split("per press:", 1)[1], re.M))
    # rounded: the idle background subtracted is a rate, so a few calls of noise remain
    assert round(float(per_press["evalsha"])) == 1, done.stdout
    assert round(float(per_press["xread"])) == 2, done.stdout  # one read per serving process
