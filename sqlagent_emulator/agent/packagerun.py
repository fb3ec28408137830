"""SSIS steps of the package deployment model: ``dtexec /FILE`` (a .dtsx file on the server) and ``dtexec /SQL``
(a package in the server's msdb package store, packagestore.py).

dtexec loads the package, runs it in its own process and returns when it ends: no SSIS catalog execution is
made. A package that cannot be found fails the step with dtexec's "Could not load package" output; dtexec's
documented exit codes are 4 ("unable to locate the requested package") and 5 ("unable to load"):
https://learn.microsoft.com/en-us/sql/integration-services/packages/dtexec-utility ("Exit Codes Returned").
The file form follows Integration Services' error 0xC0011002 (DTS_E_OPENPACKAGEFILE, "Integration Services
Error and Message Reference"). ``/SERVER`` of a /SQL step must name this server: another server's msdb is
out of the emulator's reach, so its packages are never found.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import TYPE_CHECKING

from . import messages
from .model import PackageSpec, RunStatus
from .packagestore import find_msdb_package

if TYPE_CHECKING:
    from .subsystems import StepHost

_VALUE = r'(?:"\\"(?P<{0}q>(?:[^"\\]|\\(?!"))*)\\""|"(?P<{0}d>[^"]*)"|(?P<{0}p>[^\s"]+))'
_FILE = re.compile(r"(?:^|\s)/F(?:ILE)?\s+" + _VALUE.format("f"), re.IGNORECASE)
_SQL = re.compile(r"(?:^|\s)/SQ(?:L)?\s+" + _VALUE.format("s"), re.IGNORECASE)
_SERVER = re.compile(r"(?:^|\s)/SER(?:VER)?\s+" + _VALUE.format("v"), re.IGNORECASE)
_LOCAL_NAMES = {"(local)", ".", "localhost"}
_FLEET_RUNS: Counter[tuple[str, str]] = Counter()  # runs over every server of the process (fail_first_scope)
NOT_FOUND = (
    '0xC0011002.  Description: Failed to open package file "{path}" due to error 0x80070002 "The system '
    'cannot find the file specified.".  This occurs when loading a package and the file cannot be opened or '
    "loaded correctly into the XML document. This can be the result of specifying an incorrect file name when "
    "calling LoadPackage or the specified XML file has an incorrect format."
)


def _value(match: re.Match[str] | None, key: str) -> str | None:
    if match is None:
        return None
    return next(v for v in (match[f"{key}q"], match[f"{key}d"], match[f"{key}p"]) if v is not None)


def stored_package(command: str) -> tuple[str, str, str | None] | None:
    """("file" | "msdb", the package path, the /SERVER value) of a /FILE or /SQL command, else None."""
    file_path = _value(_FILE.search(command), "f")
    if file_path is not None:
        return "file", file_path, None
    msdb_path = _value(_SQL.search(command), "s")
    if msdb_path is not None:
        return "msdb", msdb_path, _value(_SERVER.search(command), "v")
    return None


async def run_stored_package(
    host: StepHost, stop: asyncio.Event, retried: int, run_as: str, kind: str, path: str, server: str | None
) -> tuple[RunStatus, str] | None:
    """Run the package; its status and the step's history message, or None when the job was stopped."""
    started = host.store.engine.now()
    spec = await _find(host, kind, path, server)
    if spec is None:
        if kind == "file":
            body = f'Could not load package "{path}" because of error {NOT_FOUND.format(path=path)}  Source:'
        else:
            where = server or host.server_name
            body = f'Could not load package "{path}": it is not in the msdb package store of server "{where}".'
        result = "The package could not be loaded." if kind == "file" else "The package could not be found."
        text = messages.stored_package_step(body, started, host.store.engine.now(), result, False, retried, run_as)
        return RunStatus.FAILED, text
    runs = _FLEET_RUNS if spec.fail_first_scope == "fleet" else host.package_runs
    fails = runs[kind, path.lower()] < spec.fail_first or spec.outcome == "failure"
    runs[kind, path.lower()] += 1
    if not await host.work(spec.duration, stop):
        return None
    finished = host.store.engine.now()
    source = path.replace("/", "\\").rsplit("\\", 1)[-1].removesuffix(".dtsx")
    lines = [
        f"Warning: {finished:%Y-%m-%d %H:%M:%S}.00  Source: {source}  Description: {w}  End Warning"
        for w in spec.warnings
    ]
    if fails:
        errors = spec.errors or ("The package execution failed.",)
        lines += [
            f"Error: {finished:%Y-%m-%d %H:%M:%S}.00  Source: {source}  Description: {e}  End Error" for e in errors
        ]
        lines.append("DTExec: The package execution returned DTSER_FAILURE (1).")
        result = "The package execution failed."
    else:
        lines.append("DTExec: The package execution returned DTSER_SUCCESS (0).")
        result = "The package executed successfully."
    text = messages.stored_package_step("  ".join(lines), started, finished, result, not fails, retried, run_as)
    return (RunStatus.FAILED if fails else RunStatus.SUCCEEDED), text


async def _find(host: StepHost, kind: str, path: str, server: str | None) -> PackageSpec | None:
    if kind == "file":
        return host.package_files.get(path.lower())
    if server is not None and server.lower() not in _LOCAL_NAMES | {host.server_name.lower()}:
        return None
    if not await host.db(find_msdb_package, host.store.engine, path):
        return None
    return host.msdb_packages.get(path.lower(), PackageSpec(path))
