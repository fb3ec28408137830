"""Sensitive values in job step commands, found so an import stores references, never the values.

A value is sensitive when it is a ``/Par`` or ``/SET`` value whose name looks like a secret (``SENSITIVE_NAME``:
password, pwd, secret, token, key, credential), ``/DECRYPT``'s password, a ``Password=`` / ``PWD=`` of a
connection string, or the quoted string after ``PASSWORD =`` in T-SQL. Each becomes an Airflow Variable
reference named ``ssis_lb_<job>_<what>`` (letters, digits and ``_``, so it can also be an ``AIRFLOW_VAR_``
environment variable); the values stay in memory, to compare servers and to check the round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SENSITIVE_NAME = re.compile(r"pass(word)?|pwd|secret|token|api_?key|\bkey\b|credential", re.IGNORECASE)
_IN_COMMAND = (
    # the value of /DECRYPT, quoted as deploy quotes or plain
    re.compile(
        r'(?:^|\s)[/-]DE(?:CRYPT)?\s+(?:"\\"(?P<v>(?:[^"\\]|\\(?!"))*)\\""|"(?P<w>[^"]*)"|(?P<x>[^\s"]+))', re.I
    ),
    # Password= / PWD= in a connection string (ends at ; or a quote or white space)
    re.compile(r"\b(?:password|pwd)\s*=\s*(?!N?')(?:\{(?P<v>[^}]*)\}|(?P<w>[^;\"'\s]+))", re.I),
    # sqlcmd / bcp -P password (a CmdExec step)
    re.compile(r'(?:^|\s)-P\s+(?:"(?P<v>[^"]*)"|(?P<w>[^\s"]+))'),
    # T-SQL: PASSWORD = N'...'
    re.compile(r"\bpassword\s*=\s*N?'(?P<v>(?:[^']|'')*)'", re.I),
)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "x"


@dataclass
class SecretFinder:
    """Names and remembers the secrets of one job (on one server)."""

    job: str
    values: dict[str, str] = field(default_factory=dict)  # variable name -> value
    origins: dict[str, str] = field(default_factory=dict)  # variable name -> where it was found

    def reference(self, what: str, value: str, origin: str) -> str:
        """The Variable name for ``value`` (one name per distinct what)."""
        base = f"ssis_lb_{slug(self.job)}_{slug(what)}"
        name, n = base, 1
        while name in self.values and self.values[name] != value:
            n += 1
            name = f"{base}_{n}"
        self.values[name] = value
        self.origins[name] = origin
        return name

    def placeholders(self, command: str, step: str) -> str:
        """``command`` with each sensitive value replaced by ``${secret:NAME}``."""
        spans: list[tuple[int, int, str]] = []
        for pattern in _IN_COMMAND:
            for match in pattern.finditer(command):
                group = next(g for g in ("v", "w", "x") if g in match.groupdict() and match[g] is not None)
                if match[group]:
                    spans.append((match.start(group), match.end(group), match[group]))
        for pattern in _PAR_OR_SET:
            for match in pattern.finditer(command):
                if SENSITIVE_NAME.search(match["name"]):
                    group = "q" if match["q"] is not None else "p"
                    if match[group]:
                        spans.append((match.start(group), match.end(group), match[group]))
        text, last = [], 0
        for start, end, value in sorted(set(spans)):
            if start < last:
                continue
            name = self.reference(f"{step} secret", value, f"{step} command")
            text += [command[last:start], "${secret:" + name + "}"]
            last = end
        return "".join(text) + command[last:]


_PAR_OR_SET = (
    re.compile(
        r'[/-](?:Par\w*|SET)\s+"\\"(?P<name>(?:[^"\\]|\\(?!"))*)\\"";(?:"\\"(?P<q>(?:[^"\\]|\\(?!"))*)\\""|(?P<p>[^\s"]+))',
        re.I,
    ),
)
