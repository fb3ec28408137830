"""The system tests' emulated SQL Servers: a TOML config (written per deployment) and its job names.

The session's deployment has two servers of two CPUs each (``SERVERS``); the distributed deployments
(Celery) have three of different capacities and clocks (``DISTRIBUTED_SERVERS``). Every test runs jobs of
its own (names below), so the Agent history of a job on the servers is that test's history alone.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

# Made per test run (the emulated servers listen on 127.0.0.1, which every local user can reach).
SA_PASSWORD = os.environ.setdefault("SSIS_LB_SYSTEM_SA_PASSWORD", "Sa!" + secrets.token_hex(12))
OPERATOR_PASSWORD = os.environ.setdefault("SSIS_LB_SYSTEM_OPERATOR_PASSWORD", "Op!" + secrets.token_hex(12))


@dataclass(frozen=True)
class Server:
    """An emulated SQL Server: its capacity is both the emulator's ``cpus`` and the pool's ``capacity``."""

    name: str
    capacity: int = 2
    utc_offset_minutes: int = 0
    encryption: str = "optional"  # "required": SQL Server with force encryption (Airflow connects with TLS)

    @property
    def conn_id(self) -> str:
        return self.name.lower()


SERVERS = (Server("SYSNODE1"), Server("SYSNODE2", encryption="required"))
# Clocks apart (UTC+1, UTC-5, UTC+5:30): history rows in server time must be compared through each
# server's own offset, never as they are.
DISTRIBUTED_SERVERS = (Server("DISTNODE1", 3, 60), Server("DISTNODE2", 2, -300), Server("DISTNODE3", 2, 330))
BROKEN_ERROR = (
    "SSIS Error Code DTS_E_OLEDBERROR. An OLE DB error has occurred. "
    "Violation of PRIMARY KEY constraint 'PK_SysOrders'. Cannot insert duplicate key in object 'dbo.SysOrders'."
)
FLAKY_ERROR = "Transaction (Process ID 61) was deadlocked on lock resources with another process."


@dataclass(frozen=True)
class Package:
    name: str
    duration: float
    extra: str = ""  # further TOML lines of the [[packages]] table

    @property
    def path(self) -> str:
        return f"\\SSISDB\\SystemTests\\Load\\{self.name}.dtsx"


PACKAGES = (
    Package("Steady", 10),
    Package("Quick", 2),
    Package("Medium", 15),
    Package("Long", 300),
    Package("Fleet", 40),
    Package("Broken", 3, f'outcome = "failure"\nerrors = ["{BROKEN_ERROR}"]'),
    Package("Flaky", 2, f'fail_first = 1\nfail_first_scope = "fleet"\nerrors = ["{FLAKY_ERROR}"]'),
    Package("Short", 3),
    Package("Shortish", 5),
    Package("HandStarted", 12),
    Package("Watched", 45),
    Package("Filling", 60),
)

# job name -> package name
JOBS = {
    "SysOverlapA": "Steady",
    "SysOverlapB": "Steady",
    "SysOverlapC": "Steady",
    "SysBroken": "Broken",
    "SysClearOk": "Quick",
    "SysClearFlaky": "Flaky",
    "SysTriggerA": "Medium",
    "SysTriggerB": "Medium",
    "SysWorkerKill": "Medium",
    "SysMarkFailed": "Long",
    "SysMarkFailedInWorker": "Long",
    "SysFleetA": "Fleet",
    "SysFleetB": "Fleet",
    "SysFleetC": "Fleet",
    "SysStoredConn": "Quick",  # test_connection_stores.py
}
# The distributed deployment's children (tests/system/dags/ssis_distributed.py): 3 s and 5 s packages,
# the last one longer (it is also started by hand); and the HA tests' children.
DISTRIBUTED_CHILDREN = [f"DistChild{n:02}" for n in range(1, 17)]
HAND_STARTED_JOB = DISTRIBUTED_CHILDREN[-1]
DISTRIBUTED_JOBS = {job: ("Shortish" if n % 4 == 0 else "Short") for n, job in enumerate(DISTRIBUTED_CHILDREN, 1)}
DISTRIBUTED_JOBS[HAND_STARTED_JOB] = "HandStarted"
HA_JOB = "HaWatched"
DISTRIBUTED_JOBS[HA_JOB] = "Watched"
# The HA start test's: 60 s children that fill every slot of DISTRIBUTED_SERVERS, and one 5 s child that then
# waits in the start trigger.
HA_FILLERS = [f"HaFill{n}" for n in range(1, sum(server.capacity for server in DISTRIBUTED_SERVERS) + 1)]
DISTRIBUTED_JOBS.update(dict.fromkeys(HA_FILLERS, "Filling"))
HA_START_JOB = "HaStartedByTrigger"
DISTRIBUTED_JOBS[HA_START_JOB] = "Shortish"


def _toml_path(path: str) -> str:
    return path.replace("\\", "\\\\")


def write_config(path: Path, servers: tuple[Server, ...] = SERVERS, jobs: dict[str, str] = JOBS) -> Path:
    packages = {p.name: p for p in PACKAGES}
    parts = ["# written by tests/system/servers.py"]
    for package in PACKAGES:
        parts.append(
            f'[[packages]]\npath = "{_toml_path(package.path)}"\nduration = {package.duration}\n{package.extra}'
        )
    for job, package in jobs.items():
        parts.append(
            f'[[jobs]]\nname = "{job}"\n[[jobs.steps]]\nname = "Run {package}.dtsx"\n'
            f'package = "{_toml_path(packages[package].path)}"'
        )
    for server in servers:
        parts.append(
            f'[[servers]]\nname = "{server.name}"\nport = 0\ncpus = {server.capacity}\n'
            f'utc_offset_minutes = {server.utc_offset_minutes}\nencryption = "{server.encryption}"\n'
            f'[[servers.logins]]\nname = "sa"\npassword = "{SA_PASSWORD}"\nroles = ["sysadmin"]\n'
            f'[[servers.logins]]\nname = "airflow_runner"\npassword = "{OPERATOR_PASSWORD}"\n'
            'roles = ["SQLAgentOperatorRole", "ssis_logreader"]'
        )
    path.write_text("\n\n".join(parts) + "\n")
    return path
