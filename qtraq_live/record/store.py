"""The durable SQLite record: one file, one writer connection per process.

``open()`` creates the data directory and the file, switches on WAL, ``secure_delete`` (erased
rows do not linger in free pages) and foreign keys, then applies every
``qtraq_live/schema/*.sql`` in name order. All statements of this process go through one
aiosqlite connection guarded by a lock, so SQLite never sees two writers from us; a
``transaction()`` holds the lock from ``BEGIN IMMEDIATE`` to ``COMMIT``. Inside a transaction
the same ``Store`` object is used for the statements (the yielded value *is* the store), and a
nested ``transaction()`` becomes a savepoint.

An unusable file (read-only directory, disk full, I/O error, locked for too long) raises
:class:`Unavailable` with a message that says what to fix; SQLite rolls the transaction back,
so the record is never left half-written. A broken constraint raises :class:`Conflict`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from ..config import private_dir
from ..engine import live_schema
from ..errors import Conflict, Unavailable
from ..metrics import SQLITE_ERRORS

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]
Row = dict[str, Any]

BUSY_TIMEOUT_MS = 5000
# SQLite primary result codes that mean "the file or disk is not usable", with what to tell the operator.
_UNUSABLE = {
    3: "permission denied",
    5: "the database is busy (another process holds a write lock)",
    6: "the database table is locked",
    8: "the database is read-only: check the data directory's owner and permissions",
    10: "disk I/O error",
    11: "the database file is damaged",
    13: "the disk is full: free some space",
    14: "cannot open the database file: check that the data directory exists and is writable",
    26: "the file is not an SQLite database",
}

# Which store (if any) the running task holds a transaction of, and how deep it is nested.
_inside: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("qtraq_store_tx", default=None)


@dataclass(frozen=True)
class Written:
    """What a write statement did."""

    rowcount: int
    lastrowid: int | None


# Columns added to a table after databases with that table were in use: ``CREATE TABLE IF NOT
# EXISTS`` leaves an existing table as it was, so ``migrate()`` adds each one it lacks (the
# schema file declares it too, for a new database). ``(table, column, declaration)``. The fields
# of clinics, queues and tickets say so themselves (``live_schema.Field.added``).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = ()  # columns of tables live_schema does not describe


def _owner_only(path: Path) -> None:
    """The record and its WAL are readable by this user only (0600)."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)


def schema_files() -> list[tuple[str, str]]:
    """``(name, sql)`` of every schema file of the package, in name order."""
    folder = resources.files("qtraq_live").joinpath("schema")
    files = [f for f in folder.iterdir() if f.name.endswith(".sql")]
    return [(f.name, f.read_text()) for f in sorted(files, key=lambda f: f.name)]


class Store:
    """The SQLite record of this process. ``await open()`` before use, ``await close()`` after."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        self._lock = asyncio.Lock()  # bound to the loop that opens the store
        try:
            private_dir(self.path.parent)
        except OSError as exc:
            raise Unavailable(f"cannot create the data directory {self.path.parent}: {exc.strerror}") from exc
        with self._translated():
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            _owner_only(self.path)  # before WAL: SQLite gives the -wal and -shm files the same mode
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                           "secure_delete=ON", f"busy_timeout={BUSY_TIMEOUT_MS}"):
                await self._conn.execute(f"PRAGMA {pragma}")
        try:
            await self.migrate()
        except BaseException:
            await self.close()
            raise
        log.info("sqlite record open", extra={"path": str(self.path)})

    async def migrate(self) -> None:
        """Apply every schema file (each idempotent, each in one transaction), then prove the
        file is writable so a read-only directory fails now, not at the first patient."""
        conn = self._connection()
        async with self._lock:
            with self._translated():
                for name, sql in schema_files():
                    try:
                        await conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nCOMMIT;")
                    except BaseException:
                        if conn.in_transaction:
                            await conn.rollback()
                        log.error("schema file failed", extra={"schema": name})
                        raise
                await self._add_columns(conn)
                await conn.execute(
                    "INSERT INTO store_meta (key, value) VALUES ('opened_at', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(int(time.time() * 1000)),))

    @staticmethod
    async def _add_columns(conn: aiosqlite.Connection) -> None:
        """Each added column (:data:`ADDED_COLUMNS`, ``live_schema.added_columns()``) that an older
        database lacks, in one transaction."""
        missing = []
        for table, column, declaration in (*live_schema.added_columns(), *ADDED_COLUMNS):
            async with conn.execute(f"PRAGMA table_info({table})") as cur:
                if column not in {row[1] for row in await cur.fetchall()}:
                    missing.append(f"ALTER TABLE {table} ADD COLUMN {column} {declaration};")
        if missing:
            await conn.executescript("BEGIN IMMEDIATE;\n" + "\n".join(missing) + "\nCOMMIT;")
            log.info("sqlite columns added", extra={"columns": len(missing)})

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(sqlite3.Error, ValueError):
                await conn.close()

    # -- statements ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Store]:
        """``async with store.transaction() as db:`` — all or nothing. Nested: a savepoint."""
        conn = self._connection()
        held = _inside.get()
        if held is not None and held[0] == id(self):
            depth = held[1] + 1
            name = f"sp{depth}"
            token = _inside.set((id(self), depth))
            try:
                with self._translated():
                    await conn.execute(f"SAVEPOINT {name}")
                try:
                    yield self
                except BaseException:
                    with self._translated():
                        await conn.execute(f"ROLLBACK TO {name}")
                        await conn.execute(f"RELEASE {name}")
                    raise
                with self._translated():
                    await conn.execute(f"RELEASE {name}")
            finally:
                _inside.reset(token)
            return
        async with self._lock:
            token = _inside.set((id(self), 0))
            try:
                with self._translated():
                    await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                    with self._translated():
                        await conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            await conn.rollback()
                    raise
            finally:
                _inside.reset(token)

    @contextlib.asynccontextmanager
    async def _use(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection: directly inside our own transaction, else under the lock (autocommit)."""
        conn = self._connection()
        held = _inside.get()
        if held is not None and held[0] == id(self):
            with self._translated():
                yield conn
            return
        async with self._lock:
            with self._translated():
                yield conn

    async def execute(self, sql: str, params: Params = ()) -> Written:
        async with self._use() as conn:
            cur = await conn.execute(sql, params)
            written = Written(cur.rowcount, cur.lastrowid)
            await cur.close()
            return written

    async def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        async with self._use() as conn:
            cur = await conn.executemany(sql, rows)
            count = cur.rowcount
            await cur.close()
            return count

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._use() as conn:
            async with conn.execute(sql, params) as cur:
                row = await cur.fetchone()
        return dict(row) if row is not None else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._use() as conn:
            async with conn.execute(sql, params) as cur:
                rows = await cur.fetchall()
        return [dict(r) for r in rows]

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None."""
        row = await self.fetchone(sql, params)
        return None if row is None else next(iter(row.values()))

    # -- internals ----------------------------------------------------------------------

    def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise Unavailable(f"the SQLite record {self.path} is not open")
        return self._conn

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """sqlite3 errors about the file or disk → Unavailable; constraints → Conflict."""
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"record constraint failed: {exc}", code="conflict") from exc
        except sqlite3.Error as exc:
            SQLITE_ERRORS.inc()
            reason = _UNUSABLE.get((getattr(exc, "sqlite_errorcode", None) or -1) & 0xFF)
            if reason is None and isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
                reason = _UNUSABLE[14]
            if reason is None:
                raise
            log.error("sqlite record unusable", extra={"path": str(self.path), "sqlite_error": str(exc)})
            raise Unavailable(f"SQLite record {self.path}: {reason} ({exc})") from exc
