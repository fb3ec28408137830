"""docs/errors.md stays true and complete: every row names a test that exists, every message row's text
(between its ``<...>`` placeholders) is a string the named test asserts, and every message the provider's
source gives an exception (read with ``ast``) has a message row holding its fixed text."""

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
            found.append((message_table, match["shown"].replace("\\|", "|"), match["test"]))  # GFM escapes | in a table
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


# ------------------------------------------------------------------ the other direction: source -> page

PACKAGE = ROOT / "airflow_provider_ssis_lb"
# Where the message is, by callee: (position, keyword). SqlAgentError and its subclasses take
# (server, job, cause); ``type(exc)(...)`` re-raises a caught SqlAgentError's class.
_MESSAGE_ARGUMENT = {
    "ManifestError": (0, None),
    "self.fail": (1, None),
    "HTTPException": (1, "detail"),
    "type(exc)": (2, "cause"),
}
# Messages no scan can read, each with where its text comes from, so none is skipped unseen. Keyed by
# (module, the message expression as ast.unparse writes it); an entry no site uses any more fails.
UNREADABLE = {
    ("hooks/sql_agent.py", "str(exc)"): "a ValueError of timeouts.effective_query_timeout, scanned there",
    ("hooks/sql_agent.py", "exc"): "self.hook._translate(exc, ...) returns the classified error, scanned there",
    ("hooks/sql_agent.py", "tls_advice(exc)"): "sqlerrors.tls_advice picks the advice for the TLS failure",
    ("hooks/sql_agent.py", "f'{what} ({text})'"): "what: _MISSING_WHAT, the Agent object 14262 names",
    ("hooks/sql_agent.py", "text or repr(exc)"): "an unclassified driver error: the driver's own text",
    ("hooks/sql_agent.py", "error.cause"): "a TransientConnectionError at connect re-typed, its cause kept",
    ("manifest.py", "checker.errors"): "the errors self.fail recorded, scanned there",
    ("manifest.py", "str(exc.problem)"): "PyYAML's text for a value its tag does not fit",
    ("operators/sql_agent.py", "cause"): "missing_job.missing_job_advice: the job exists on no server",
    ("operators/sql_agent.py", "str(event.get('message'))"): "the trigger's message, scanned there",
    ("operators/sql_agent.py", "_event_cause(event)"): "the trigger's message without its prefix",
    ("operators/sql_agent.py", "failure_cause(result)"): "reporting.failure_cause: the failed step's text",
    ("sensors/sql_agent.py", "failure_cause(result)"): "reporting.failure_cause: the failed step's text",
    ("sensors/sql_agent.py", "state.note"): "the hook's note on an unknown outcome",
    ("sensors/sql_agent.py", "event['message']"): "the trigger's message, scanned there",
}


def _exception_classes() -> tuple[set[str], dict[str, tuple[ast.expr, list[ast.AST]]]]:
    """The SqlAgentError family, and the provider's other exception classes that make their own message
    (class name -> the argument of their ``super().__init__``, and the scopes to read it in)."""
    classes: dict[str, tuple[ast.ClassDef, ast.Module]] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = (node, tree)
    family = {"SqlAgentError"}
    while True:
        more = {n for n, (c, _) in classes.items() if any(ast.unparse(b) in family for b in c.bases)} - family
        if not more:
            break
        family |= more
    own: dict[str, tuple[ast.expr, list[ast.AST]]] = {}
    for name, (cls, tree) in classes.items():
        init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        for node in ast.walk(init) if init and name not in family else ():
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "super().__init__" and node.args:
                own[name] = (node.args[0], [init, tree])
    return family, own


_FAMILY, _OWN_MESSAGE = _exception_classes()


def _is_exception_class(name: str) -> bool:
    return name in _FAMILY or name in _OWN_MESSAGE or re.search(r"(Error|Exception|Timeout)$", name) is not None


def _message_of(call: ast.Call, raised: bool) -> tuple[ast.expr | None, list[ast.AST]] | None:
    """The expression holding the message of an exception made by ``call`` (None: made without one), and
    the scopes to read it in if not the call's own; None: ``call`` makes no exception."""
    callee = ast.unparse(call.func)
    if call.args and isinstance(call.args[0], ast.Name) and call.args[0].id in _FAMILY:
        position, keyword = 1, "cause"  # error(kind, cause), a helper making a SqlAgentError of that kind
    elif callee in _MESSAGE_ARGUMENT:
        position, keyword = _MESSAGE_ARGUMENT[callee]
    elif callee in _FAMILY:
        position, keyword = 2, "cause"
    elif callee in _OWN_MESSAGE:
        return _OWN_MESSAGE[callee]
    elif raised or _is_exception_class(callee):
        position, keyword = 0, None
    else:
        return None
    if len(call.args) > position:
        return call.args[position], []
    return next((k.value for k in call.keywords if k.arg == keyword), None), []


def _texts(expr: ast.expr, scopes: list[ast.AST]) -> list[str] | None:
    """Each text the expression can give, ``\\0`` where a part varies; None: not readable from source."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if isinstance(expr, ast.JoinedStr):
        found = [""]
        for part in expr.values:
            if isinstance(part, ast.Constant):
                found = [f + str(part.value) for f in found]
            else:
                inner = _texts(part.value, scopes) if isinstance(part.value, ast.Name) else None
                found = [f + i for f in found for i in (inner or ["\0"])]
        return found
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left, right = _texts(expr.left, scopes), _texts(expr.right, scopes)
        if left is None and right is None:
            return None
        return [a + b for a in (left or ["\0"]) for b in (right or ["\0"])]
    if isinstance(expr, ast.IfExp):
        body, orelse = _texts(expr.body, scopes), _texts(expr.orelse, scopes)
        return None if body is None or orelse is None else body + orelse
    if isinstance(expr, ast.List | ast.Tuple):
        each = [_texts(e, scopes) for e in expr.elts]
        return None if not each or None in each else [t for texts in each for t in texts or ()]
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):  # a helper of the module: what it returns
        helper = next(
            (n for n in ast.walk(scopes[-1]) if isinstance(n, ast.FunctionDef) and n.name == expr.func.id), None
        )
        returns = [n.value for n in ast.walk(helper) if isinstance(n, ast.Return) and n.value] if helper else []
        each = [_texts(r, [helper, scopes[-1]]) for r in returns]
        return None if not each or None in each else [t for texts in each for t in texts or ()]
    if isinstance(expr, ast.Name):
        for scope in scopes:  # innermost first: the assignments to that name there (a module's own only)
            nodes = scope.body if isinstance(scope, ast.Module) else ast.walk(scope)
            values = [
                n.value
                for n in nodes
                if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == expr.id for t in n.targets)
            ]
            if values:
                each = [_texts(v, scopes) for v in values]
                return None if None in each else [t for texts in each for t in texts or ()]
    return None


def _fixed_parts(text: str) -> list[str]:
    """The parts of a message that do not vary and say something (two words or more)."""
    parts = (p.strip(" \n'\"(),:;.") for p in text.split("\0"))
    return [p for p in parts if len(re.findall(r"[A-Za-z]{2,}", p)) >= 2]


def message_sites() -> list[tuple[str, int, str, list[str] | None]]:
    """(module, line, message expression, its texts or None) for every exception the provider makes with a
    message: each ``raise`` of a call, and each call of an exception class elsewhere."""
    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        raised = {id(n.exc) for n in ast.walk(tree) if isinstance(n, ast.Raise)}
        for node in ast.walk(tree):
            found = _message_of(node, id(node) in raised) if isinstance(node, ast.Call) else None
            if found is None or found[0] is None:
                continue
            message, scopes = found
            if not scopes:
                inside = [f for f in functions if f.lineno <= node.lineno <= (f.end_lineno or f.lineno)]
                scopes = [*sorted(inside, key=lambda f: -f.lineno), tree]
            texts = _texts(message, scopes)
            if texts is not None and not all(_fixed_parts(t) for t in texts):
                texts = None
            sites.append((module, node.lineno, ast.unparse(message), texts))
    return sites


def _documented_messages() -> list[str]:
    return [re.sub(r"^`|`$", "", shown) for is_message, shown, _test in rows() if is_message]


@pytest.mark.parametrize(("module", "line", "expression", "texts"), message_sites(), ids=lambda v: str(v)[:50])
def test_each_message_of_the_provider_has_a_row(module: str, line: int, expression: str, texts: list[str]) -> None:
    """A message the provider raises has a row whose message holds its fixed parts (between the parts that
    vary), so a new message cannot be left off the page."""
    if texts is None:
        assert (module, expression) in UNREADABLE, f"{module}:{line}: cannot read {expression}: list it in UNREADABLE"
        return
    documented = _documented_messages()
    for text in texts:
        parts = _fixed_parts(text)
        assert any(all(p in shown for p in parts) for shown in documented), (
            f"{module}:{line}: no message row of docs/errors.md holds {parts}"
        )


def test_each_unreadable_entry_is_still_used() -> None:
    used = {(module, expression) for module, _line, expression, texts in message_sites() if texts is None}
    assert set(UNREADABLE) <= used, f"stale UNREADABLE entries: {set(UNREADABLE) - used}"
