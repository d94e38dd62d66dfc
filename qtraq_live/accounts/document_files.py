"""A patient's document as bytes: what it really is, cleaned, encrypted on disk.

* :func:`sniff` reads the type from the content (magic bytes), never from the name or the
  client's declared type.
* :func:`clean` re-encodes images with Pillow so nothing but the pixels survives (EXIF, GPS
  positions, comments, ICC profiles), turns the picture upright first, refuses decompression
  bombs, and makes a small thumbnail; a PDF must be a PDF from its header to its end marker.
* :class:`Vault` keeps files under ``DATA_DIR/documents/`` with random names, encrypted with
  Fernet (AES-128-CBC + HMAC-SHA256) under ``documents.key``, which is kept apart from the data
  (environment or secret store; see docs/documents.md). Several comma-separated keys: the
  first encrypts, all decrypt, so a key can be rotated.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from PIL import Image, ImageOps, UnidentifiedImageError

from ..config import Settings
from ..errors import Unavailable, UnsupportedMediaType

log = logging.getLogger(__name__)

JPEG, PNG, PDF = "image/jpeg", "image/png", "application/pdf"
TYPES = (JPEG, PNG, PDF)
_MAGIC = ((b"\xff\xd8\xff", JPEG), (b"\x89PNG\r\n\x1a\n", PNG), (b"%PDF-", PDF))
_PIL_FORMAT = {JPEG: "JPEG", PNG: "PNG"}
MAX_PIXELS = 40_000_000  # a 40-megapixel photo is plenty; more is a decompression bomb
THUMB_PX = 256
KEY_FILE = "documents.key"


def sniff(data: bytes) -> str | None:
    """The type the bytes really are (one of :data:`TYPES`), or None."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    return None


@dataclass(frozen=True)
class Cleaned:
    type: str
    data: bytes
    thumb: bytes | None


def clean(data: bytes) -> Cleaned:
    """The file as it will be stored; :class:`UnsupportedMediaType` (415) when it is not a JPEG,
    PNG or PDF, or is one only by its first bytes."""
    kind = sniff(data)
    if kind is None:
        raise UnsupportedMediaType("file: only JPEG, PNG and PDF files are accepted (checked by content)",
                               code="type_not_allowed")
    if kind == PDF:
        if b"%%EOF" not in data[-2048:]:
            raise UnsupportedMediaType("file: this is not a complete PDF", code="content_mismatch")
        return Cleaned(PDF, data, None)
    return _clean_image(kind, data)


def _clean_image(kind: str, data: bytes) -> Cleaned:
    fmt = _PIL_FORMAT[kind]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as probe:
                if probe.width * probe.height > MAX_PIXELS:
                    raise UnsupportedMediaType(f"file: the picture is larger than {MAX_PIXELS // 1_000_000} megapixels",
                                           code="image_too_large")
                probe.load()  # decodes every pixel: a truncated or forged file fails here
                upright = ImageOps.exif_transpose(probe)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning):
        raise UnsupportedMediaType(f"file: this is not a readable {fmt} picture", code="content_mismatch") from None
    if fmt == "JPEG" and upright.mode not in ("RGB", "L"):
        upright = upright.convert("RGB")
    upright.info = {}  # nothing but pixels: no EXIF, GPS, text chunks or profiles
    out = io.BytesIO()
    upright.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {"optimize": True}))
    thumb = upright.copy()
    thumb.thumbnail((THUMB_PX, THUMB_PX))
    small = io.BytesIO()
    thumb.save(small, fmt)
    return Cleaned(kind, out.getvalue(), small.getvalue())


def _keys(settings: Settings) -> list[bytes]:
    """``documents.key``; in development, one generated once into DATA_DIR (see module doc)."""
    configured = [k.strip().encode() for k in settings["documents.key"].split(",") if k.strip()]
    if configured:
        return configured
    if settings.production:
        raise Unavailable("documents are off: set QTRAQ_DOCUMENTS_KEY (kept outside the data directory)")
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
            log.warning("development: a documents key was generated in the data dir; in production set "
                        "QTRAQ_DOCUMENTS_KEY and keep it apart from the data")
    return [path.read_bytes().strip()]


class Vault:
    """Encrypted files with random names in one directory."""

    def __init__(self, folder: Path, keys: list[bytes]) -> None:
        self.folder = folder
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise Unavailable("documents.key: each key must be a Fernet key (32 url-safe base64 bytes)") from None

    @classmethod
    def for_settings(cls, settings: Settings) -> Vault:
        return cls(folder_of(settings), _keys(settings))

    @classmethod
    def of_app(cls, state: Any) -> Vault:
        """The app's vault (``app.state.documents_vault``), made on first use: the key is read
        then, so a server without documents never needs one."""
        vault: Vault | None = getattr(state, "documents_vault", None)
        if vault is None:
            vault = state.documents_vault = cls.for_settings(state.settings)
        return vault

    def put(self, data: bytes) -> str:
        """Encrypt and write; returns the new random name. Written to a temporary name and
        renamed, so a crash never leaves a half-written file under a real name."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = secrets.token_hex(16)
        tmp = self.folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(self._fernet.encrypt(data))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / name)
        return name

    def get(self, name: str) -> bytes:
        try:
            return self._fernet.decrypt((self.folder / name).read_bytes())
        except (OSError, InvalidToken):
            log.error("document file %s unreadable", name, exc_info=True)
            raise Unavailable("this document cannot be read now") from None

    def remove(self, *names: str | None) -> None:
        remove(self.folder, *names)


def folder_of(settings: Settings) -> Path:
    return settings.data_dir / "documents"


def remove(folder: Path, *names: str | None) -> None:
    """Delete stored files (missing ones are fine: erasure may run twice). No key needed."""
    for name in names:
        if name:
            (folder / name).unlink(missing_ok=True)


def stored(folder: Path, older_than_s: float = 0) -> set[str]:
    """Stored file names last written more than ``older_than_s`` ago (for the orphan sweep,
    which must not take a file whose row is being written right now)."""
    if not folder.is_dir():
        return set()
    cutoff = time.time() - older_than_s
    return {p.name for p in folder.iterdir() if p.stat().st_mtime < cutoff}
