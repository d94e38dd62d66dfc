"""Another commit's code beside this tree's, for benchmarks that compare the two in one run.

The development machine's speed drifts by up to a factor of two within an hour, so an old and
a new tree compare only when measured side by side: ``exported`` puts a commit's files in a
folder (``git archive``), ``tree_env`` runs ``qtraq_live`` from it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def exported(ref: str, into: Path) -> Path:
    """``ref``'s tree, exported with ``git archive`` into ``into``."""
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def tree_env(source: Path | None) -> dict[str, str]:
    """The environment that runs ``qtraq_live`` from ``source`` (this tree when None); the
    command must also run in ``source``, as ``python -m`` puts its working folder first."""
    if source is None:
        return dict(os.environ)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(source), os.environ.get("PYTHONPATH"))))}
