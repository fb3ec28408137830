"""Secret references in a manifest: ``{secret: NAME}`` instead of a sensitive value, resolved by deploy.

``ssis-lb import-jobs`` writes sensitive values it finds in job steps (``/Par`` values of sensitive-looking
parameters, ``/SET`` on a password property, ``/DECRYPT``, ``Password=`` in connection strings) as references
to Airflow Variables, never as text (docs/manifest.md, "Secrets"). Deploy reads the Variable, registers the
value with Airflow's secret masker and puts it in the step's command. A value must obey the manifest's rules
for text that reaches a job step; an error names the Variable, never the value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from .manifest import _FORBIDDEN, ChildPackage, PackageParameter

SecretLookup = Callable[[str], str]
# In a ``steps:`` child's command text: ``${secret:NAME}`` stands for the Variable's value
PLACEHOLDER = re.compile(r"\$\{secret:(?P<name>[^}\s]+)\}")


class SecretError(ValueError):
    """A referenced secret is missing or unusable; the message names the Variable only."""


def airflow_variable(name: str) -> str:
    """The Airflow Variable ``name`` (secrets backend, ``AIRFLOW_VAR_<NAME>``, metadata database), masked."""
    from airflow.sdk import Variable
    from airflow.sdk.log import mask_secret

    value = Variable.get(name, default=None)
    if value is None:
        raise SecretError(
            f"secret '{name}' is not set: create the Airflow Variable (airflow variables set {name} ...) "
            "or an AIRFLOW_VAR_ environment variable"
        )
    mask_secret(str(value))
    return str(value)


def checked(name: str, value: str, *, in_quotes: bool) -> str:
    """``value``, refused (naming the Variable only) when it could not stand in a dtexec command."""
    if _FORBIDDEN.search(value) or (in_quotes and '"' in value):
        raise SecretError(
            f"secret '{name}' holds a character a job step may not contain (a control character, a double "
            "quote or a look-alike of '\"' or '\\'); see docs/manifest.md"
        )
    return value


def resolve_child(child: ChildPackage, lookup: SecretLookup) -> ChildPackage:
    """``child`` with every ``{secret: ...}`` value and ``${secret:NAME}`` placeholder filled in from ``lookup``."""

    def fill(values: tuple[PackageParameter, ...]) -> tuple[PackageParameter, ...]:
        return tuple(
            dataclasses.replace(p, value=checked(p.secret, lookup(p.secret), in_quotes=True)) if p.secret else p
            for p in values
        )

    steps = tuple(
        dataclasses.replace(step, command=resolve_text(step.command, lookup))
        if PLACEHOLDER.search(step.command)
        else step
        for step in child.steps
    )
    if steps == child.steps and not any(p.secret for p in child.parameters + child.set_values):
        return child
    return dataclasses.replace(child, parameters=fill(child.parameters), set_values=fill(child.set_values), steps=steps)


def resolve_text(text: str, lookup: SecretLookup) -> str:
    """``text`` with each ``${secret:NAME}`` replaced by the Variable's value."""
    return PLACEHOLDER.sub(lambda m: checked(m["name"], lookup(m["name"]), in_quotes=False), text)
