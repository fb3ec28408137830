"""The system tests' emulated SQL Servers: a TOML config (written per session) and its job names.

Two servers of two CPUs each. Every test runs jobs of its own (names below), so the Agent history
of a job on the servers is that test's history alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SA_PASSWORD = "Emul4tor!Pass"
SERVERS = ("SYSNODE1", "SYSNODE2")
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
}


def _toml_path(path: str) -> str:
    return path.replace("\\", "\\\\")


def write_config(path: Path) -> Path:
    packages = {p.name: p for p in PACKAGES}
    parts = ["# written by tests/system/servers.py"]
    for package in PACKAGES:
        parts.append(
            f'[[packages]]\npath = "{_toml_path(package.path)}"\nduration = {package.duration}\n{package.extra}'
        )
    for job, package in JOBS.items():
        parts.append(
            f'[[jobs]]\nname = "{job}"\n[[jobs.steps]]\nname = "Run {package}.dtsx"\n'
            f'package = "{_toml_path(packages[package].path)}"'
        )
    for server in SERVERS:
        parts.append(
            f'[[servers]]\nname = "{server}"\nport = 0\ncpus = 2\n'
            f'[[servers.logins]]\nname = "sa"\npassword = "{SA_PASSWORD}"\nroles = ["sysadmin"]\n'
            '[[servers.logins]]\nname = "airflow_runner"\npassword = "Runner!Pass1"\n'
            'roles = ["SQLAgentOperatorRole", "ssis_logreader"]'
        )
    path.write_text("\n\n".join(parts) + "\n")
    return path
