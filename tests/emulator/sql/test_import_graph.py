"""No two modules of sqlagent_emulator/sql import each other, at run time or for type checking: the lower
modules name the upper ones through contracts.py's protocols (import_graph.py measures it)."""

from __future__ import annotations

from pathlib import Path

from .import_graph import cycles, import_graph, mutual_pairs, report


def test_no_module_of_the_sql_layer_imports_itself_back_at_run_time() -> None:
    graph = import_graph()
    assert len(graph) >= 25
    assert {"session", "procedures"} <= graph["engine"]  # the graph is read, not empty
    assert cycles(graph) == [], report()


def test_nor_through_type_checking_imports() -> None:
    graph = import_graph(typing=True)
    assert "contracts" in graph["runtime"] and "contracts" in graph["procedures"]
    assert cycles(graph) == [] and mutual_pairs(graph) == [], report()


def test_the_graph_sees_deferred_and_type_checking_imports(tmp_path: Path) -> None:
    """The measure can fail: a deferred import is a runtime cycle; a TYPE_CHECKING one only a typing cycle."""
    (tmp_path / "low.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .high import High\n"
        "def f():\n    from . import middle\n",
        encoding="utf-8",
    )
    (tmp_path / "middle.py").write_text("from .low import f\n", encoding="utf-8")
    (tmp_path / "high.py").write_text("from sqlagent_emulator.sql import middle\nclass High: ...\n", encoding="utf-8")
    assert import_graph(tmp_path) == {"low": {"middle"}, "middle": {"low"}, "high": {"middle"}}
    assert cycles(import_graph(tmp_path)) == [["low", "middle"]]
    assert cycles(import_graph(tmp_path, typing=True)) == [["high", "low", "middle"]]
