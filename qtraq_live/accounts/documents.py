"""Documents a patient brings for a visit: the record rows, the quota, who may see them.

A document belongs to an account and one of its patients, and may be attached to one of that
patient's appointments; staff see it only through that appointment (reception, or the doctor
of its queue). Files are written before their row and deleted after it, so a failure leaves at
worst an unreferenced encrypted file, which :func:`sweep_orphans` removes (at ``purge``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import secrets
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

from ..errors import Invalid, NotFound, PayloadTooLarge
from ..queue_engine import iso
from ..record.store import Store
from .document_files import Vault, clean, remove, stored

log = logging.getLogger(__name__)

Json = dict[str, Any]
NAME_MAX = 120
ORPHAN_AGE_S = 3600  # an upload writes its files, then its row, within seconds
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\<>\"'`]")


def clean_name(raw: str | None) -> str:
    """The file's name for display: no path, no control or markup characters, ≤ 120 chars."""
    name = unicodedata.normalize("NFC", (raw or "").replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", name).strip(" .")
    return name[:NAME_MAX] or "document"


def view(row: Json) -> Json:
    return {"id": row["public_id"], "name": row["name"], "type": row["type"], "size": row["size"],
            "patient": row["patient_id"], "appointment": row["appointment_id"],
            "thumbnail": row["thumb"] is not None, "created_at": iso(row["created_at"])}


async def add(store: Store, vault: Vault, *, account_id: int, patient_id: int, appointment_id: int | None,
              name: str, data: bytes, max_bytes: int, quota_bytes: int, now_ms: int) -> Json:
    """Check, clean, encrypt and record one upload. 413 over the size limit or the quota,
    415 for a type not allowed or content that does not match it."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"file: larger than {max_bytes} bytes", code="file_too_large")
    if not data:
        raise Invalid("file", "is empty")
    cleaned = await asyncio.to_thread(clean, data)
    if appointment_id is not None:
        appt = await store.fetchone("SELECT 1 FROM appointments WHERE id = ? AND account_id = ? AND patient_id = ?",
                                    (appointment_id, account_id, patient_id))
        if appt is None:
            raise Invalid("appointment", "is not an appointment of this patient")
    blob = await asyncio.to_thread(vault.put, cleaned.data)
    thumb = await asyncio.to_thread(vault.put, cleaned.thumb) if cleaned.thumb is not None else None
    try:
        async with store.transaction() as db:
            used = await db.fetchval("SELECT coalesce(sum(size), 0) FROM documents WHERE account_id = ?",
                                     (account_id,))
            if int(used) + len(cleaned.data) > quota_bytes:
                raise PayloadTooLarge(f"file: this account's documents would exceed {quota_bytes} bytes; "
                                      "delete some first", code="quota_exceeded")
            written = await db.execute(
                "INSERT INTO documents (public_id, account_id, patient_id, appointment_id, name, type, size, blob,"
                " thumb, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (secrets.token_urlsafe(16), account_id, patient_id, appointment_id, clean_name(name), cleaned.type,
                 len(cleaned.data), blob, thumb, now_ms))
    except BaseException:
        vault.remove(blob, thumb)  # nothing half-written: the files go with the failed row
        raise
    log.info("account %d: document %d stored (%s, %d bytes)", account_id, written.lastrowid, cleaned.type,
             len(cleaned.data))
    return view(await _row(store, "id = ?", (written.lastrowid,)))


async def _row(store: Store, where: str, params: tuple[Any, ...]) -> Json:
    row = await store.fetchone(f"SELECT * FROM documents WHERE {where}", params)
    if row is None:
        raise NotFound("unknown document")
    return row


async def list_for(store: Store, account_id: int) -> list[Json]:
    return [view(r) for r in await store.fetchall(
        "SELECT * FROM documents WHERE account_id = ? ORDER BY id", (account_id,))]


async def own(store: Store, account_id: int, public_id: str) -> Json:
    return await _row(store, "public_id = ? AND account_id = ?", (public_id, account_id))


async def delete_own(store: Store, vault: Vault, account_id: int, public_id: str) -> None:
    row = await own(store, account_id, public_id)
    await store.execute("DELETE FROM documents WHERE id = ?", (row["id"],))
    vault.remove(row["blob"], row["thumb"])


async def for_appointment(store: Store, appointment_id: int) -> list[Json]:
    return [view(r) for r in await store.fetchall(
        "SELECT * FROM documents WHERE appointment_id = ? ORDER BY id", (appointment_id,))]


async def with_queue(store: Store, public_id: str) -> Json:
    """A document attached to an appointment, with that appointment's queue (staff access);
    an unattached one is unknown to staff."""
    row = await store.fetchone("SELECT d.*, a.queue AS queue FROM documents d JOIN appointments a"
                               " ON a.id = d.appointment_id WHERE d.public_id = ?", (public_id,))
    if row is None:
        raise NotFound("unknown document")
    return row


async def files_of(store: Store, where: str, params: tuple[Any, ...]) -> list[str]:
    """Every file name (documents and thumbnails) of the rows matching ``where``."""
    rows = await store.fetchall(f"SELECT blob, thumb FROM documents WHERE {where}", params)
    return [n for r in rows for n in (r["blob"], r["thumb"]) if n]


async def sweep_orphans(store: Store, folder: Path) -> int:
    """Delete stored files no row names (left by a crash between a row and its files)."""
    candidates = stored(folder, older_than_s=ORPHAN_AGE_S)
    known = set(await files_of(store, "1 = 1", ()))
    stray = candidates - known
    remove(folder, *stray)
    return len(stray)


async def export_zip(store: Store, vault: Vault, account_id: int, data: bytes) -> bytes:
    """The export as a zip: ``my-data.json`` and each document under ``documents/``."""
    rows = await store.fetchall("SELECT public_id, name, blob FROM documents WHERE account_id = ? ORDER BY id",
                                (account_id,))
    files = [(f"documents/{r['public_id']}-{r['name']}", await asyncio.to_thread(vault.get, r["blob"]))
             for r in rows]

    def build() -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("my-data.json", data)
            for name, body in files:
                zf.writestr(name, body)
        return out.getvalue()

    return await asyncio.to_thread(build)
