"""espeak-ng renders a call's sentence to a WAV file, cached on disk by voice and text.

Clips live under ``DATA_DIR/speech/{sha256}.wav`` (each process's own data dir: a hub renders
its own). Labels repeat every day, so the cache keeps paying off; it holds at most
:data:`MAX_CLIPS` files, the oldest going first. The text reaches espeak-ng on stdin, never as
an argument, and as plain text (no SSML), so a counter name cannot change what it does.
At most :data:`PARALLEL` renders run at once in a process; one takes about 0.1 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path

from ..errors import Unavailable
from .phrases import voice

log = logging.getLogger(__name__)

ESPEAK = "espeak-ng"
SPEED_WPM = 140  # a little slower than espeak's default 175: a waiting room, not a podcast
MAX_CLIPS = 5000
PARALLEL = 2
RENDER_TIMEOUT_S = 15.0
_slots = threading.BoundedSemaphore(PARALLEL)


def available() -> bool:
    return shutil.which(ESPEAK) is not None


def _name(lang: str, text: str) -> str:
    return hashlib.sha256(f"{voice(lang)}\n{SPEED_WPM}\n{text}".encode()).hexdigest() + ".wav"


async def clip(cache_dir: Path, lang: str, text: str) -> Path:
    """The WAV file saying ``text`` in ``lang``: from the cache, or rendered now (in a thread)."""
    path = cache_dir / _name(lang, text)
    if path.exists():
        return path
    if not available():
        raise Unavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    return await asyncio.to_thread(_render, path, lang, text)


def _render(path: Path, lang: str, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    with _slots:
        try:
            done = subprocess.run([ESPEAK, "-v", voice(lang), "-s", str(SPEED_WPM), "--stdin", "-w", str(tmp)],
                                  input=text.encode(), capture_output=True, timeout=RENDER_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise Unavailable("espeak-ng took too long") from None
    if done.returncode != 0 or not tmp.exists() or tmp.stat().st_size <= 44:  # 44: a WAV header alone
        tmp.unlink(missing_ok=True)
        log.error("espeak-ng failed for voice %s: exit %s %s", voice(lang), done.returncode, done.stderr[:200])
        raise Unavailable("speech rendering failed")
    tmp.replace(path)  # atomic: a reader sees the whole file or none
    _trim(path.parent)
    return path


def _trim(cache_dir: Path) -> None:
    files = list(cache_dir.glob("*.wav"))
    if len(files) <= MAX_CLIPS:
        return
    files.sort(key=lambda f: f.stat().st_mtime)
    for old in files[: len(files) - MAX_CLIPS]:
        old.unlink(missing_ok=True)
