"""sys.dm_server_services through a real client: the SQL Server and Agent rows follow the emulated services
(an Agent restart is a new process and a later start time), and only VIEW SERVER STATE may read them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from sqlagent_emulator.config import ConfigError, load_config
from sqlagent_emulator.sql.engine import Login
from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import Client
from tests.clients import error_number
from tests.conftest import OPERATOR_PASSWORD, SA_PASSWORD, SqlServerTarget, emulator_config

SERVICES = (
    "SELECT servicename, status, status_desc, process_id, last_startup_time, startup_type_desc, service_account "
    "FROM sys.dm_server_services ORDER BY servicename"
)
ENGINE, AGENT = "SQL Server (MSSQLSERVER)", "SQL Server Agent (MSSQLSERVER)"


@pytest.fixture
def server() -> Iterator[tuple[EmulatorController, SqlServerTarget]]:
    base = emulator_config(name="SERVICES")
    monitor = Login(
        "agent_monitor", OPERATOR_PASSWORD, frozenset({"SQLAgentOperatorRole"}), frozenset({"VIEW SERVER STATE"})
    )
    with EmulatorController([dataclasses.replace(base, logins=(*base.logins, monitor))]) as controller:
        yield controller, SqlServerTarget("SERVICES", "127.0.0.1", controller["SERVICES"].port, "sa", SA_PASSWORD)


def rows(client: Client) -> dict[str, tuple[object, ...]]:
    return {row[0]: row[1:] for row in client.run(SERVICES)}


def test_sa_sees_both_services_running(server) -> None:
    _controller, target = server
    with closing(Client("odbc18", target, "sa", SA_PASSWORD)) as sa:
        services = rows(sa)
        assert sa.run("SELECT @@SERVICENAME") == [("MSSQLSERVER",)]
        (engine_pid,) = sa.run("SELECT SERVERPROPERTY('ProcessID')")[0]
    assert set(services) == {ENGINE, AGENT}
    for status, desc, pid, started, startup, _account in services.values():
        assert (status, desc, startup) == (4, "Running", "Automatic")
        assert pid is not None and started is not None
    assert services[ENGINE][2] == engine_pid
    assert services[AGENT][2] != engine_pid
    assert services[AGENT][5] == "NT Service\\SQLSERVERAGENT"


def test_agent_restart_and_stop_show_in_the_agent_row(server) -> None:
    controller, target = server
    agent = controller["SERVICES"].agent
    with closing(Client("pymssql", target, "sa", SA_PASSWORD)) as sa:
        before = rows(sa)
        controller.call(agent.restart())
        after = rows(sa)
        assert after[AGENT][:2] == (4, "Running")
        assert after[AGENT][2] != before[AGENT][2]  # a new process
        assert after[AGENT][3] > before[AGENT][3]  # started later
        assert after[ENGINE] == before[ENGINE]  # SQL Server went on running
        controller.call(agent.stop())
        stopped = rows(sa)
        assert stopped[AGENT][:3] == (1, "Stopped", None)
        assert stopped[AGENT][3] == after[AGENT][3]  # the last start is kept
        assert sa.run(
            "SELECT status_desc FROM sys.dm_server_services WHERE servicename LIKE ?", "SQL Server Agent%"
        ) == [("Stopped",)]


def test_a_service_restart_starts_both_services_again(server) -> None:
    controller, target = server
    with closing(Client("odbc18", target, "sa", SA_PASSWORD)) as sa:
        before = rows(sa)
    controller.call(controller["SERVICES"].restart_service())
    with closing(Client("odbc18", target, "sa", SA_PASSWORD)) as sa:
        after = rows(sa)
    for name in (ENGINE, AGENT):
        assert after[name][:2] == (4, "Running")
        assert after[name][2] != before[name][2] and after[name][3] > before[name][3]


@pytest.mark.parametrize(
    ("stack", "number", "text"),
    [
        # SQL Server sends 300 then 297; ODBC reports the first, pymssql (DB-Library) the last.
        ("odbc18", 300, "VIEW SERVER STATE permission was denied on object 'server', database 'master'."),
        ("pymssql", 297, "The user does not have permission to perform this action."),
    ],
)
def test_reading_it_needs_view_server_state(server, stack: str, number: int, text: str) -> None:
    _controller, target = server
    with (
        closing(Client(stack, target, "agent_operator", OPERATOR_PASSWORD)) as operator,
        pytest.raises(Exception) as caught,
    ):
        operator.run("SELECT status_desc FROM sys.dm_server_services")
    assert error_number(caught.value) == number
    assert text in str(caught.value)
    with closing(Client(stack, target, "agent_monitor", OPERATOR_PASSWORD)) as monitor:
        assert set(rows(monitor)) == {ENGINE, AGENT}


def test_the_config_grants_only_known_server_permissions(tmp_path: Path) -> None:
    path = tmp_path / "servers.toml"
    login = '[[servers.logins]]\nname = "monitor"\npassword = "x"\nroles = ["SQLAgentOperatorRole"]\n'
    path.write_text(f'[[servers]]\nname = "A"\n{login}permissions = ["VIEW SERVER STATE"]\n')
    (server,) = load_config(path)
    assert server.logins[0].permissions == frozenset({"VIEW SERVER STATE"})
    path.write_text(f'[[servers]]\nname = "A"\n{login}permissions = ["VIEW ANY DATABASE"]\n')
    with pytest.raises(ConfigError, match="unknown permission"):
        load_config(path)
