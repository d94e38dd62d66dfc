"""No import cycles in qtraq_live, lazy imports included (tests/support_imports.py reads them)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support_imports import cycles, graph

def test_the_package_has_no_import_cycle() -> None:
    found = cycles(graph())
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


def drawn_layers() -> list[tuple[str, list[str]]]:
    """The rows of docs/internals.md's import graph, top layer first: (name, module patterns)."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "internals.md").read_text()
    block = text.split("## Import graph", 1)[1].split("```", 2)[1]
    rows = []
    for line in block.strip().splitlines():
        name, modules = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        rows.append((name, [m.strip() for m in modules.split(",")]))
    return rows


def layer_of(module: str, layers: list[tuple[str, list[str]]]) -> list[int]:
    """The rows naming ``module``; a row naming it exactly wins over a ``pkg/*`` one."""
    short = module.removeprefix("qtraq_live.")
    exact = [i for i, (_, patterns) in enumerate(layers) if short in patterns]
    if exact:
        return exact
    return [i for i, (_, patterns) in enumerate(layers) for p in patterns
            if p.endswith("/*") and (short == p[:-2] or short.startswith(p[:-2] + "."))]


def test_internals_md_draws_the_import_graph_as_it_is() -> None:
    layers = drawn_layers()
    g = graph()
    placed = {m: layer_of(m, layers) for m in g if m != "qtraq_live"}
    assert {m: where for m, where in placed.items() if len(where) != 1} == {}, "each module in one layer"
    upward = sorted(f"{m} ({layers[placed[m][0]][0]}) imports {t} ({layers[placed[t][0]][0]})"
                    for m, targets in g.items() if m != "qtraq_live" for t in targets
                    if placed[t][0] < placed[m][0])  # rows run top to bottom: a smaller index is higher
    assert upward == []
