"""The SQLite record: pragmas, schemas, transactions, and clear errors when the disk says no."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support_durability import store  # noqa: F401

from qtraq_live.errors import Conflict, Unavailable
from qtraq_live.record.store import Store, schema_files

READ_ONLY_OPEN = """
import asyncio, os, sys
from qtraq_live.errors import Unavailable
from qtraq_live.record.store import Store
if os.geteuid() == 0:  # root writes anywhere: drop to nobody to meet the permission check
    os.setgid(65534)
    os.setuid(65534)

async def main() -> int:
    try:
        await Store(sys.argv[1]).open()
    except Unavailable as exc:
        print(exc.message)
        return 3
    return 0

sys.exit(asyncio.run(main()))
"""


async def test_open_creates_the_file_with_wal_and_every_schema(tmp_path: Path) -> None:
    s = Store(tmp_path / "new" / "dir" / "qtraq.db")
    await s.open()
    try:
        assert (tmp_path / "new" / "dir" / "qtraq.db").exists()
        assert await s.fetchval("PRAGMA journal_mode") == "wal"
        assert await s.fetchval("PRAGMA foreign_keys") == 1
        assert await s.fetchval("PRAGMA secure_delete") == 1
        assert await s.fetchval("PRAGMA busy_timeout") == 5000
        tables = {r["name"] for r in await s.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"clinics", "queues", "tickets", "ticket_contacts", "events", "clinic_versions"} <= tables
        await s.execute("INSERT INTO ticket_contacts (ticket_id, email, created_at) VALUES (1, 'a@example.org', 5)")
    finally:
        await s.close()
    again = Store(tmp_path / "new" / "dir" / "qtraq.db")  # schemas apply again, harmlessly
    await again.open()
    assert await again.fetchone("SELECT ticket_id, email FROM ticket_contacts") == {"ticket_id": 1, "email": "a@example.org"}
    await again.close()
    assert [name for name, _ in schema_files()] == sorted(name for name, _ in schema_files())


async def test_transaction_is_all_or_nothing_and_nests_as_savepoints(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as db:
            await db.execute("INSERT INTO ticket_contacts (ticket_id, created_at) VALUES (1, 0)")
            raise RuntimeError("boom")
    assert await store.fetchval("SELECT count(*) FROM ticket_contacts") == 0

    async with store.transaction() as db:
        await db.execute("INSERT INTO ticket_contacts (ticket_id, created_at) VALUES (2, 0)")
        with pytest.raises(Conflict):
            async with db.transaction():
                await db.execute("INSERT INTO ticket_contacts (ticket_id, created_at) VALUES (3, 0)")
                await db.execute("INSERT INTO ticket_contacts (ticket_id, created_at) VALUES (2, 0)")
        assert await db.fetchval("SELECT count(*) FROM ticket_contacts") == 1  # sees its own writes
    assert [r["ticket_id"] for r in await store.fetchall("SELECT ticket_id FROM ticket_contacts")] == [2]


async def test_concurrent_transactions_do_not_interleave(store: Store) -> None:
    await store.execute("INSERT INTO store_meta (key, value) VALUES ('n', '0')")

    async def bump() -> None:
        async with store.transaction() as db:
            n = int(await db.fetchval("SELECT value FROM store_meta WHERE key = 'n'"))
            await asyncio.sleep(0)  # let the others run: they must wait for this transaction
            await db.execute("UPDATE store_meta SET value = ? WHERE key = 'n'", (str(n + 1),))

    await asyncio.gather(*(bump() for _ in range(25)))
    assert await store.fetchval("SELECT value FROM store_meta WHERE key = 'n'") == "25"


async def test_a_data_dir_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(Unavailable, match="cannot create the data directory"):
        await Store(tmp_path / "file" / "data" / "qtraq.db").open()


def test_a_read_only_data_dir_is_a_clear_error() -> None:
    data = Path(tempfile.mkdtemp(prefix="qtraq-ro-"))
    try:
        data.chmod(0o555)
        proc = subprocess.run([sys.executable, "-c", READ_ONLY_OPEN, str(data / "qtraq.db")],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 3, proc.stderr
        assert "writable" in proc.stdout or "read-only" in proc.stdout
        assert str(data) in proc.stdout
        assert os.listdir(data) == []
    finally:
        data.chmod(0o755)
        shutil.rmtree(data)


async def test_a_full_disk_is_a_clear_error_and_the_record_stays_whole(store: Store) -> None:
    await store.execute("INSERT INTO ticket_contacts (ticket_id, email, created_at) VALUES (1, 'kept@example.org', 0)")
    pages = await store.fetchval("PRAGMA page_count")
    await store.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk is full two pages from now
    with pytest.raises(Unavailable, match="disk is full"):
        async with store.transaction() as db:
            for i in range(2, 200):
                await db.execute("INSERT INTO ticket_contacts (ticket_id, email, created_at) VALUES (?, ?, 0)",
                                 (i, "x" * 500))
    assert await store.fetchval("PRAGMA integrity_check") == "ok"
    assert await store.fetchall("SELECT ticket_id, email FROM ticket_contacts") == [
        {"ticket_id": 1, "email": "kept@example.org"}]
    await store.execute("PRAGMA max_page_count = 1073741823")
    await store.execute("INSERT INTO ticket_contacts (ticket_id, created_at) VALUES (2, 0)")  # usable again


async def test_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    s = Store(tmp_path / "qtraq.db")
    await s.open()
    await s.close()
    with pytest.raises(Unavailable, match="not open"):
        await s.fetchone("SELECT 1")
