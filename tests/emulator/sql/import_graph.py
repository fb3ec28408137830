"""The import graph of ``sqlagent_emulator/sql``: which of its modules import which, at run time.

Imports inside functions count, as they run too (a deferred import is still a cycle). Imports under
``if TYPE_CHECKING:`` never run: ``import_graph`` leaves them out unless ``typing=True``, which shows the
modules that need each other's types (two modules that need each other share a ``typing.Protocol``
instead, in a module that imports neither). Run as a script to print the cycles of both graphs.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "sqlagent_emulator.sql"
ROOT = Path(__file__).resolve().parents[3] / "sqlagent_emulator" / "sql"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, typing: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if not typing and isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _imports(other, typing)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from _imports(child, typing)


def _targets(node: ast.Import | ast.ImportFrom, modules: set[str]) -> set[str]:
    """The sibling modules of the sql package that one import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = PACKAGE.split(".")
        if node.level:
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
    found = set()
    for name in names:
        if name.startswith(PACKAGE + "."):
            module = name[len(PACKAGE) + 1 :].split(".")[0]
            if module in modules:
                found.add(module)
    return found


def import_graph(root: Path = ROOT, *, typing: bool = False) -> dict[str, set[str]]:
    """module -> the sibling modules it imports at run time (and, with ``typing``, for type checking)."""
    modules = {path.stem for path in root.glob("*.py") if path.stem != "__init__"}
    graph = {}
    for module in sorted(modules):
        tree = ast.parse((root / f"{module}.py").read_text(encoding="utf-8"))
        graph[module] = set().union(*(_targets(n, modules) for n in _imports(tree, typing))) - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups, key=lambda g: (-len(g), g))


def mutual_pairs(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of modules that import each other directly."""
    return sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph.get(b, ()))


def report(root: Path = ROOT) -> str:
    lines = []
    for typing, label in ((False, "runtime imports"), (True, "runtime and TYPE_CHECKING imports")):
        graph = import_graph(root, typing=typing)
        found = cycles(graph)
        pairs = mutual_pairs(graph)
        lines.append(f"{label}: {len(graph)} modules, {sum(len(v) for v in graph.values())} imports between them")
        lines.append(f"  {len(found)} cycle group(s)" + ("".join(f"\n    {len(g)}: {', '.join(g)}" for g in found)))
        lines.append(f"  {len(pairs)} pair(s) importing each other: {', '.join(f'{a}<->{b}' for a, b in pairs)}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT))
