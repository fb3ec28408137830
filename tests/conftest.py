"""The one place integration tests get their SQL Server from.

Without ``SSIS_LB_TEST_MSSQL`` the fixtures start the emulator on a free loopback port. With it
(an ODBC connection string such as ``SERVER=host,1433;UID=sa;PWD=...``) the same tests run
against that real SQL Server; tests that need the emulator's controls are skipped there.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import tempfile

# Airflow reads its home at import time: give the test run its own, before anything imports it.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="ssis-lb-airflow-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__PROVIDERS_ODBC__ALLOW_DRIVER_IN_EXTRA", "true")
# dag.test() runs triggers inline, so the scheduler/executor race the hold guards against cannot happen.
os.environ.setdefault("AIRFLOW__SSIS_LB__DEFER_SETTLE_SECONDS", "0")
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sqlagent_emulator.agent.model import PackageSpec
from sqlagent_emulator.config import ServerConfig
from sqlagent_emulator.sql.engine import Login
from sqlagent_emulator.testing import EmulatorController

REAL_SERVER_ENV = "SSIS_LB_TEST_MSSQL"
# The emulated logins' passwords, made per test run (kept in the environment so the run's child processes
# share them): the emulator listens on 127.0.0.1, which every local user of the machine can reach.
SA_PASSWORD = os.environ.setdefault("SSIS_LB_TEST_SA_PASSWORD", "Sa!" + secrets.token_hex(12))
OPERATOR_PASSWORD = os.environ.setdefault("SSIS_LB_TEST_OPERATOR_PASSWORD", "Op!" + secrets.token_hex(12))


@dataclass(frozen=True)
class SqlServerTarget:
    """Where a test connects, and as whom."""

    name: str
    host: str
    port: int
    user: str
    password: str
    emulator: EmulatorController | None = None

    def as_login(self, user: str, password: str) -> SqlServerTarget:
        return SqlServerTarget(self.name, self.host, self.port, user, password, self.emulator)


# Packages the emulated SSIS catalog of the test servers can run (a real server needs them deployed).
TEST_PACKAGES = (
    PackageSpec("\\SSISDB\\Tests\\Demo\\Quick.dtsx", duration=0.3),
    PackageSpec("\\SSISDB\\Tests\\Demo\\Slow.dtsx", duration=2.0),
    PackageSpec(
        "\\SSISDB\\Tests\\Demo\\Broken.dtsx",
        duration=0.2,
        outcome="failure",
        errors=('Cannot open the datafile "C:\\in\\orders.csv".',),
        warnings=("Truncation may occur.",),
    ),
    PackageSpec("\\SSISDB\\Tests\\Demo\\Flaky.dtsx", duration=0.1, fail_first=1, errors=("Deadlock victim.",)),
    # CheckpointUsage=IfExists: its first execution on a server fails at "Load facts"; the next one *there*
    # restarts from the checkpoint file on that server's disk.
    PackageSpec(
        "\\SSISDB\\Tests\\Demo\\Checkpointed.dtsx",
        duration=0.3,
        fail_first=1,
        errors=("The facts table is locked.",),
        tasks=("Extract", "Load facts", "Publish"),
        fail_at="Load facts",
        checkpoints=True,
    ),
)
# Packages outside the catalog (package deployment model): a .dtsx file on the server's disk (dtexec /FILE)
# and a package in its msdb package store (dtexec /SQL).
TEST_PACKAGE_FILES = (PackageSpec("C:\\packages\\FileQuick.dtsx", duration=0.2),)
TEST_MSDB_PACKAGES = (PackageSpec("\\Tests\\MsdbQuick", duration=0.2),)


def emulator_config(name: str = "SQLTEST1", cpus: int = 2, **overrides: object) -> ServerConfig:
    """A test server; CmdExec steps off (as by default) unless ``allow_cmdexec=True``."""
    overrides.setdefault("packages", TEST_PACKAGES)
    overrides.setdefault("package_files", TEST_PACKAGE_FILES)
    overrides.setdefault("msdb_packages", TEST_MSDB_PACKAGES)
    return ServerConfig(
        name=name,
        cpus=cpus,
        agent_minute_seconds=0.05,
        **overrides,
        logins=(
            Login("sa", SA_PASSWORD, frozenset({"sysadmin"})),
            # The provider's recommended login: Operator in msdb, ssis_logreader in SSISDB (docs/permissions.md).
            Login("agent_operator", OPERATOR_PASSWORD, frozenset({"SQLAgentOperatorRole", "ssis_logreader"})),
            # The same with VIEW SERVER STATE, which lets the provider see an Agent restart (docs/permissions.md).
            Login(
                "agent_operator_state",
                OPERATOR_PASSWORD,
                frozenset({"SQLAgentOperatorRole", "ssis_logreader"}),
                frozenset({"VIEW SERVER STATE"}),
            ),
            # The same without SSISDB: the catalog views hide the runs' SSIS messages from it.
            Login("agent_operator_only", OPERATOR_PASSWORD, frozenset({"SQLAgentOperatorRole"})),
            Login("agent_user", OPERATOR_PASSWORD, frozenset({"SQLAgentUserRole"})),
            # Reads every job and changes none of others' (ssis-lb import-jobs needs no more).
            Login("agent_reader", OPERATOR_PASSWORD, frozenset({"SQLAgentReaderRole"})),
        ),
    )


def _parse_odbc(connection_string: str) -> dict[str, str]:
    pairs = re.findall(r"([^=;]+)=(\{(?:[^}]|\}\})*\}|[^;]*)", connection_string)
    return {k.strip().upper(): v.strip("{}").replace("}}", "}") for k, v in pairs}


@pytest.fixture(scope="session")
def sql_server() -> Iterator[SqlServerTarget]:
    real = os.environ.get(REAL_SERVER_ENV)
    if real:
        parts = _parse_odbc(real)
        host, _, port = parts.get("SERVER", "127.0.0.1").partition(",")
        yield SqlServerTarget(host.replace("tcp:", ""), host, int(port or 1433), parts["UID"], parts["PWD"])
        return
    # CmdExec on: tests run steps that echo, exit with a code, or sleep (test_agent_through_drivers.py,
    # test_secrets.py); the logins' passwords are made per run, so no other local user can add such a step.
    with EmulatorController([emulator_config(allow_cmdexec=True)]) as controller:
        server = controller["SQLTEST1"]
        yield SqlServerTarget(server.name, "127.0.0.1", server.port, "sa", SA_PASSWORD, controller)


@pytest.fixture
def emulator(sql_server: SqlServerTarget) -> EmulatorController:
    """Tests that drive the emulator's own controls; skipped against a real server."""
    if sql_server.emulator is None:
        pytest.skip("needs the emulator's controls")
    return sql_server.emulator
