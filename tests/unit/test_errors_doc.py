"""docs/errors.md stays true: every row names a test that exists, and every message row's text (between
its ``<...>`` placeholders) is a string the named test asserts."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "errors.md"
_ROW = re.compile(r"^\| (?P<what>.+?) \| (?P<shown>.+) \| (?P<test>tests/\S+\.py::\w+(?:\[[\w.-]+\])?) \|$")
_PLACEHOLDER = re.compile(r"<[^<>]*>")


def rows() -> list[tuple[bool, str, str]]:
    """(is a message row, the message or outcome, the test) for every table row of the page."""
    found, message_table = [], False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and line.endswith(" | test |"):
            message_table = "| message |" in line
            continue
        match = _ROW.match(line)
        if match:
            found.append((message_table, match["shown"], match["test"]))
    return found


def strings_of(test: str) -> tuple[str, str]:
    """The test function's source text and the text of its string literals (f-string holes as NUL)."""
    path, _, name = test.partition("::")
    name, _, param = name.partition("[")
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    function = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name), None)
    assert function is not None, f"{test}: no such test function"
    texts = []
    for node in ast.walk(function):
        if isinstance(node, ast.JoinedStr):
            texts.append("".join(v.value if isinstance(v, ast.Constant) else "\0" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
    if param:
        assert f'id="{param.rstrip("]")}"' in ast.unparse(function).replace("'", '"'), f"{test}: no such case"
    return ast.unparse(function), "\n".join(texts)


def test_the_page_lists_at_least_40_messages() -> None:
    assert sum(1 for is_message, _shown, _test in rows() if is_message) >= 40


@pytest.mark.parametrize(("is_message", "shown", "test"), rows(), ids=lambda v: str(v)[:60])
def test_each_row_is_backed_by_its_test(is_message: bool, shown: str, test: str) -> None:
    _source, literals = strings_of(test)
    if not is_message:
        return
    message = re.fullmatch(r"`(.+)`", shown)
    assert message, f"{test}: the message column holds one `code` span"
    for fragment in _PLACEHOLDER.split(message.group(1)):
        assert fragment in literals, f"{test} does not assert {fragment!r}"
