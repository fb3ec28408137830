"""Precedence constraints into Airflow dependencies and trigger rules (pure; knows SSIS records, not files).

SSIS constraints join siblings of one container; a constraint on a Sequence container starts the tasks at
its entry (those nothing inside it waits for) and waits for the tasks at its exit. So each task's upstream
set comes from the innermost level where it, or the container it is an entry of, has constraints.
"""

from __future__ import annotations

from dataclasses import dataclass

from .dtsx import Constraint, EvalOp, Outcome, Package

# one kind of constraint into a task -> its trigger rule, for AND (LogicalAnd true) and OR constraints
RULES = {
    (Outcome.SUCCESS, True): "all_success",
    (Outcome.FAILURE, True): "all_failed",
    (Outcome.COMPLETION, True): "all_done",
    (Outcome.SUCCESS, False): "one_success",
    (Outcome.FAILURE, False): "one_failed",
    (Outcome.COMPLETION, False): "one_done",
}


@dataclass(frozen=True)
class Edge:
    """A constraint as it applies once disabled executables are bypassed."""

    source: str
    value: Outcome
    logical_and: bool
    via: tuple[str, ...] = ()  # disabled executables bypassed on the way


@dataclass(frozen=True)
class RuleChoice:
    rule: str
    flag: str | None  # why the rule is an approximation, when it is


def choose_rule(edges: list[Edge]) -> RuleChoice:
    """The trigger rule for a target's constraints. A mix no single Airflow rule expresses is flagged with
    what was chosen: the stricter reading for AND, ``one_done`` for OR."""
    kinds = {e.value for e in edges}
    ands = {e.logical_and for e in edges} if len(edges) > 1 else {True}  # AND or OR matters from two on
    flag = None
    logical_and = True if len(ands) > 1 else ands.pop()
    if len(ands) > 1:
        flag = "constraints mix AND and OR; read as AND"
    if len(kinds) == 1:
        return RuleChoice(RULES[(kinds.pop(), logical_and)], flag)
    names = "/".join(sorted(k.name.lower() for k in kinds))
    if not logical_and:
        return RuleChoice("one_done", f"OR of {names} constraints: no Airflow rule says that; chose one_done")
    if Outcome.FAILURE in kinds:
        return RuleChoice("one_failed", f"AND of {names} constraints: no Airflow rule says that; chose one_failed")
    return RuleChoice(
        "all_success", f"AND of {names} constraints: no Airflow rule says that; chose all_success (stricter)"
    )


class ControlFlow:
    """The enabled part of a package's control flow, with disabled executables bypassed."""

    def __init__(self, package: Package, opaque: set[str]) -> None:
        """:param opaque: containers converted as one task (loops): their insides are not walked."""
        self.package = package
        self.opaque = opaque
        self.by_target: dict[str, list[Constraint]] = {}
        for constraint in package.constraints:
            self.by_target.setdefault(constraint.target, []).append(constraint)
        self.notes: dict[str, list[str]] = {}  # executable key -> flags found while reading its constraints

    def enabled(self, key: str) -> bool:
        return not self.package.effectively_disabled(key)

    def is_group(self, key: str) -> bool:
        node = self.package.executables[key]
        return node.kind == "sequence" and key not in self.opaque and bool(self.members(key))

    def members(self, container: str) -> list[str]:
        return [k for k in self.package.executables[container].children if self.enabled(k)]

    def incoming(self, target: str, seen: tuple[str, ...] = ()) -> list[Edge]:
        """The target's constraints; one from a disabled executable is replaced by that executable's own
        (SSIS reports a disabled executable as succeeded, so Success and Completion constraints from it hold,
        Failure ones never do)."""
        edges: list[Edge] = []
        for constraint in self.by_target.get(target, []):
            value = constraint.value
            if constraint.eval_op is not EvalOp.CONSTRAINT:
                how = "the expression is dropped"
                if constraint.eval_op is EvalOp.EXPRESSION:
                    value, how = Outcome.COMPLETION, "an expression-only constraint becomes a Completion constraint"
                text = f" `{constraint.expression}`" if constraint.expression else ""
                self.note(target, f"constraint from {self.display(constraint.source)} has an expression{text}: {how}")
            if self.enabled(constraint.source):
                edges.append(Edge(constraint.source, value, constraint.logical_and, seen))
            elif value is Outcome.FAILURE:
                self.note(
                    target, f"Failure constraint from disabled {self.display(constraint.source)} never holds; dropped"
                )
            elif constraint.source not in seen:
                bypassed = self.incoming(constraint.source, (*seen, constraint.source))
                edges += [Edge(e.source, e.value, e.logical_and and constraint.logical_and, e.via) for e in bypassed]
                if bypassed:
                    self.note(target, f"waits for what disabled {self.display(constraint.source)} waited for")
        return edges

    def note(self, key: str, text: str) -> None:
        if text not in self.notes.setdefault(key, []):
            self.notes[key].append(text)

    def display(self, key: str) -> str:
        """``Package\\Load\\Run X``: the names along the path (a refId in the attribute layout)."""
        names = []
        node: str | None = key
        while node is not None:
            executable = self.package.executables[node]
            names.append("Package" if executable.parent is None else executable.name)
            node = executable.parent
        return "\\".join(reversed(names))

    def sources_inside(self, container: str) -> set[str]:
        return {e.source for k in self.members(container) for e in self.incoming(k)}

    def entries(self, key: str) -> list[str]:
        """Tasks that start when ``key`` starts."""
        if not self.is_group(key):
            return [key]
        return [t for k in self.members(key) if not self.incoming(k) for t in self.entries(k)]

    def exits(self, key: str) -> list[str]:
        """Tasks ``key`` has finished with once they have."""
        if not self.is_group(key):
            return [key]
        waited_for = self.sources_inside(key)
        return [t for k in self.members(key) if k not in waited_for for t in self.exits(k)]

    def dependencies(self) -> dict[str, tuple[set[str], RuleChoice]]:
        """Every task with constraints: its upstream tasks and trigger rule."""
        found: dict[str, tuple[set[str], RuleChoice]] = {}

        def visit(container: str) -> None:
            for key in self.members(container):
                edges = self.incoming(key)
                if edges:
                    choice = choose_rule(edges)
                    if choice.flag:
                        self.note(key, choice.flag)
                    upstream = {t for e in edges for t in self.exits(e.source)}
                    wide = [e.source for e in edges if len(self.exits(e.source)) > 1]
                    if wide and choice.rule not in ("all_success", "all_done"):
                        self.note(
                            key,
                            f"{choice.rule} reads each last task of {', '.join(map(self.display, wide))} on its own, "
                            "not the container's result",
                        )
                    for entry in self.entries(key):
                        found[entry] = (upstream, choice)
                if self.is_group(key):
                    visit(key)

        visit(self.package.root)
        return found
