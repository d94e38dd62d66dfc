"""No import cycles in qtraq_live, lazy imports included (tests/support_imports.py reads them)."""

from __future__ import annotations

from tests.support_imports import cycles, graph

# Removed on the scale branch (#17); delete this line when it is merged.
PENDING_ELSEWHERE = [["qtraq_live.hub", "qtraq_live.hub_sockets"]]


def test_the_package_has_no_import_cycle() -> None:
    found = [c for c in cycles(graph()) if c not in PENDING_ELSEWHERE]
    assert found == [], f"import cycles: {found}"


def test_a_function_level_import_counts(tmp_path) -> None:
    pkg = tmp_path / "qtraq_live"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n    return a\n")
    (pkg / "c.py").write_text("import importlib\nM = importlib.import_module('qtraq_live.d')\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n")
    assert cycles(graph(pkg)) == [["qtraq_live.a", "qtraq_live.sub.b"], ["qtraq_live.c", "qtraq_live.d"]]
