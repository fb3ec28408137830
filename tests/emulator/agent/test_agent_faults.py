"""The emulator's controls: Agent restarts, a server off the network, a service restart with its
state on disk, latency, the local clock, contention, and the command-line control channel."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from sqlagent_emulator.agent.model import PackageSpec
from sqlagent_emulator.control import send_command
from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import (
    EXECUTING,
    FAILED,
    IDLE,
    SUCCEEDED,
    Client,
    create_job,
    history,
    job_status,
    requests,
    wait_until_idle,
)
from tests.clients import connect, error_number
from tests.conftest import SA_PASSWORD, SqlServerTarget, emulator_config


@pytest.fixture
def own_server(request: pytest.FixtureRequest) -> Iterator[tuple[EmulatorController, SqlServerTarget]]:
    """A private emulated server (these tests break it on purpose), configured by the test's marker."""
    marker = request.node.get_closest_marker("server")
    overrides = dict(marker.kwargs) if marker else {}
    config = emulator_config(name="FAULTY", **overrides)
    with EmulatorController([config]) as controller:
        server = controller["FAULTY"]
        yield controller, SqlServerTarget("FAULTY", "127.0.0.1", server.port, "sa", SA_PASSWORD, controller)


def sa_client(target: SqlServerTarget) -> Client:
    return Client("odbc18", target, "sa", SA_PASSWORD)


def test_agent_restart_abandons_the_running_job(own_server) -> None:
    controller, target = own_server
    with closing(sa_client(target)) as sa:
        name = create_job(sa, [{"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:10'"}])
        sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
        assert job_status(sa, name)[0] == EXECUTING
        controller.call(controller["FAULTY"].agent.restart())
        assert job_status(sa, name)[0] == IDLE
        sessions = sa.run("SELECT session_id FROM msdb.dbo.syssessions ORDER BY session_id")
        assert [s for (s,) in sessions] == [1, 2]
        rows = sa.run(
            "SELECT a.session_id, a.start_execution_date, a.stop_execution_date FROM msdb.dbo.sysjobactivity a "
            "JOIN msdb.dbo.sysjobs j ON j.job_id = a.job_id WHERE j.name = ? ORDER BY a.session_id",
            name,
        )
        assert rows[0][0] == 1 and rows[0][1] is not None and rows[0][2] is None  # abandoned: no stop date
        assert rows[1][0] == 2 and rows[1][1] is None
        assert history(sa, name) == []  # no outcome row for an abandoned run


def _queued_request(controller: EmulatorController, sa: Client) -> str:
    """A new job started while Agent takes 1.5 s to pick requests up: its request is queued now."""
    controller.control("pickup-delay", "FAULTY", "1.5")
    name = create_job(sa, [{"subsystem": "TSQL", "command": "SELECT 1"}])
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    return name


def test_a_request_agent_has_not_picked_up_is_idle_then_runs(own_server) -> None:
    controller, target = own_server
    with closing(sa_client(target)) as sa:
        name = _queued_request(controller, sa)
        assert job_status(sa, name)[0] == IDLE  # queued in Agent: not executing yet
        [(_session, requested, started)] = requests(sa, name)
        assert requested is not None and started is None
        give_up = time.monotonic() + 10
        while not history(sa, name) and time.monotonic() < give_up:
            time.sleep(0.1)
        assert history(sa, name)[-1][2] == SUCCEEDED
        [(_session, _requested, started)] = requests(sa, name)
        assert (started - requested).total_seconds() >= 1.4  # picked up after the delay


def test_an_agent_restart_loses_a_request_not_picked_up(own_server) -> None:
    controller, target = own_server
    with closing(sa_client(target)) as sa:
        name = _queued_request(controller, sa)
        controller.call(controller["FAULTY"].agent.restart())
        time.sleep(2.5)  # past the pickup delay: a request that survived would have run by now
        assert job_status(sa, name)[0] == IDLE
        assert history(sa, name) == []
        old, new = requests(sa, name)
        assert old[1] is not None and old[2] is None  # requested in the old session, never started
        assert new[0] > old[0] and new[1] is None and new[2] is None
        assert controller.control("status", "FAULTY")["servers"][0]["running_jobs"] == []


def test_start_while_agent_is_stopped_is_22022(own_server) -> None:
    controller, target = own_server
    with closing(sa_client(target)) as sa:
        name = create_job(sa, [{"subsystem": "TSQL", "command": "SELECT 1"}])
        controller.call(controller["FAULTY"].agent.stop())
        with pytest.raises(Exception) as caught:
            sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
        assert error_number(caught.value) == 22022
        assert "SQLServerAgent is not currently running so it cannot be notified of this action." in str(caught.value)
        controller.call(controller["FAULTY"].agent.start())
        sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
        wait_until_idle(sa, name)
        assert history(sa, name)[-1][2] == SUCCEEDED


def test_offline_server_keeps_running_its_jobs(own_server) -> None:
    controller, target = own_server
    server = controller["FAULTY"]
    with closing(sa_client(target)) as sa:
        name = create_job(sa, [{"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:01'"}])
        sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    controller.call(server.take_offline())
    import pyodbc

    with pytest.raises(pyodbc.OperationalError):  # 08001/HYT00: nothing listens on the port
        connect("odbc18", target.host, target.port, "sa", SA_PASSWORD, login_timeout=2)
    time.sleep(1.5)
    controller.call(server.bring_online())
    with closing(sa_client(target)) as sa:
        wait_until_idle(sa, name)
        assert [r[2] for r in history(sa, name)] == [SUCCEEDED, SUCCEEDED]


def test_service_restart_reloads_state_from_disk(tmp_path: Path) -> None:
    config = emulator_config(name="DURABLE", state_dir=str(tmp_path))
    with EmulatorController([config]) as controller:
        target = SqlServerTarget("DURABLE", "127.0.0.1", controller["DURABLE"].port, "sa", SA_PASSWORD)
        with closing(sa_client(target)) as sa:
            name = create_job(sa, [{"subsystem": "TSQL", "command": "SELECT 1"}])
            sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
            wait_until_idle(sa, name)
        port = controller["DURABLE"].port
        controller.call(controller["DURABLE"].restart_service())
        assert controller["DURABLE"].port == port
        with closing(sa_client(target)) as sa:
            assert [r[2] for r in history(sa, name)] == [SUCCEEDED, SUCCEEDED]
            assert sa.run("SELECT MAX(session_id) FROM msdb.dbo.syssessions") == [(2,)]
    with EmulatorController([config]) as controller:  # a new process-like start from the same files
        target = SqlServerTarget("DURABLE", "127.0.0.1", controller["DURABLE"].port, "sa", SA_PASSWORD)
        with closing(sa_client(target)) as sa:
            assert sa.run("SELECT COUNT(*) FROM msdb.dbo.sysjobs WHERE name = ?", name) == [(1,)]
            assert sa.run("SELECT MAX(session_id) FROM msdb.dbo.syssessions") == [(3,)]


def test_flaky_package_fails_its_first_execution_then_succeeds(own_server) -> None:
    """``fail_first`` counts this server's catalog executions of the package (a fresh server here)."""
    _controller, target = own_server
    command = (
        '/ISSERVER "\\"\\SSISDB\\Tests\\Demo\\Flaky.dtsx\\"" /Par "\\"$ServerOption::SYNCHRONIZED(Boolean)\\"";True'
    )
    with closing(sa_client(target)) as sa:
        name = create_job(sa, [{"subsystem": "SSIS", "command": command}])
        outcomes = []
        for _ in range(2):
            sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
            wait_until_idle(sa, name)
            outcomes.append(history(sa, name)[-1][2])
    assert outcomes == [FAILED, SUCCEEDED]


def test_fleet_scoped_failure_fails_once_over_every_server() -> None:
    """``fail_first_scope = "fleet"``: a retry on another server succeeds (a cause outside the servers)."""
    package = PackageSpec("\\SSISDB\\Tests\\Demo\\LateFile.dtsx", 0.1, fail_first=1, fail_first_scope="fleet")
    configs = [dataclasses.replace(emulator_config(name), packages=(package,)) for name in ("FLEETA", "FLEETB")]
    command = (
        '/ISSERVER "\\"\\SSISDB\\Tests\\Demo\\LateFile.dtsx\\"" /Par "\\"$ServerOption::SYNCHRONIZED(Boolean)\\"";True'
    )
    outcomes = []
    with EmulatorController(configs) as controller:
        for name in ("FLEETA", "FLEETB"):
            target = SqlServerTarget(name, "127.0.0.1", controller[name].port, "sa", SA_PASSWORD)
            with closing(sa_client(target)) as sa:
                job = create_job(sa, [{"subsystem": "SSIS", "command": command}])
                sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", job)
                wait_until_idle(sa, job)
                outcomes.append(history(sa, job)[-1][2])
    assert outcomes == [FAILED, SUCCEEDED]


def test_slow_delays_every_answer(own_server) -> None:
    controller, target = own_server
    with closing(sa_client(target)) as sa:
        started = time.monotonic()
        sa.run("SELECT 1 AS one")
        fast = time.monotonic() - started
        controller.control("slow", "FAULTY", "300")
        started = time.monotonic()
        sa.run("SELECT 1 AS one")
        slow = time.monotonic() - started
    assert slow >= 0.3 > fast


@pytest.mark.server(utc_offset_minutes=-300)
def test_server_clock_is_local_time_with_its_offset(own_server) -> None:
    _controller, target = own_server
    with closing(sa_client(target)) as sa:
        local, utc = sa.run("SELECT GETDATE() AS l, GETUTCDATE() AS u")[0]
        assert abs((utc - local) - dt.timedelta(hours=5)) < dt.timedelta(seconds=2)
        name = create_job(sa, [{"subsystem": "TSQL", "command": "SELECT 1"}])
        sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
        wait_until_idle(sa, name)
        step = history(sa, name)[0]
        started = dt.datetime.strptime(f"{step[3]}{step[4]:06d}", "%Y%m%d%H%M%S")
        assert abs((started - local).total_seconds()) < 5  # history is in the server's local time


def _two_jobs_wall_time(target: SqlServerTarget) -> float:
    with closing(sa_client(target)) as sa:
        names = [create_job(sa, [{"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:01'"}]) for _ in range(2)]
        started = time.monotonic()
        for name in names:
            sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
        for name in names:
            wait_until_idle(sa, name)
        return time.monotonic() - started


@pytest.mark.server(cpus=1)
def test_contention_stretches_runs_beyond_the_cpu_count(own_server) -> None:
    _controller, target = own_server
    with EmulatorController([emulator_config(name="ROOMY", cpus=2)]) as roomy:
        roomy_target = SqlServerTarget("ROOMY", "127.0.0.1", roomy["ROOMY"].port, "sa", SA_PASSWORD)
        with_room = _two_jobs_wall_time(roomy_target)
    crowded = _two_jobs_wall_time(target)
    assert crowded / with_room > 1.6  # two jobs on one slot each run at half speed


def test_command_line_and_control_channel(tmp_path: Path) -> None:
    config = tmp_path / "servers.toml"
    config.write_text(
        '[[packages]]\npath = "\\\\SSISDB\\\\F\\\\P\\\\Nightly.dtsx"\nduration = 0.2\n\n'
        '[[jobs]]\nname = "Nightly load"\n[[jobs.steps]]\nname = "Run package"\n'
        'package = "\\\\SSISDB\\\\F\\\\P\\\\Nightly.dtsx"\n\n'
        '[[servers]]\nname = "CLI1"\nport = 0\ncpus = 2\n'
        '[[servers.logins]]\nname = "sa"\npassword = "Cli!Pass1"\nroles = ["sysadmin"]\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "sqlagent_emulator", "--config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        control = process.stdout.readline().split()
        assert ready[0] == "READY" and ready[1] == "name=CLI1" and control[0] == "CONTROL"
        port, control_port = int(ready[3].split("=")[1]), control[2].split("=")[1]
        token_file = Path(control[3].split("=", 1)[1])
        assert token_file.stat().st_mode & 0o777 == 0o600  # only the emulator's owner can read it
        target = SqlServerTarget("CLI1", "127.0.0.1", port, "sa", "Cli!Pass1")
        with closing(Client("pymssql", target, "sa", "Cli!Pass1")) as sa:
            sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", "Nightly load")
            wait_until_idle(sa, "Nightly load")
            assert [r[2] for r in history(sa, "Nightly load")] == [SUCCEEDED, SUCCEEDED]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sqlagent_emulator",
                "control",
                "--port",
                control_port,
                "--token-file",
                str(token_file),
                "agent-restart",
                "CLI1",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert '"agent_session": 2' in result.stdout
        refused = send_command(int(control_port), "offline", "CLI1", token="not-the-token")
        assert refused == {"ok": False, "error": "refused: wrong or missing control token"}
        assert send_command(int(control_port), "status", token=token_file.read_text())["servers"][0]["online"]
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "STOPPED" in out
    assert not token_file.exists()  # removed when the emulator stops


CHECKPOINTED = (
    '/ISSERVER "\\"\\SSISDB\\Tests\\Demo\\Checkpointed.dtsx\\"" /Par "\\"$ServerOption::SYNCHRONIZED(Boolean)\\"";True'
)


def task_messages(sa: Client, execution_id: int) -> list[str]:
    rows = sa.run(
        "SELECT message FROM SSISDB.catalog.event_messages WHERE operation_id = ? ORDER BY event_message_id",
        execution_id,
    )
    return [r[0] for r in rows if "Task completed" in r[0] or "checkpoint" in r[0]]


def test_a_checkpointed_package_restarts_from_its_checkpoint_only_on_its_own_server() -> None:
    """CheckpointUsage=IfExists: the checkpoint file is on the server that ran the failed execution."""
    configs = [emulator_config(name) for name in ("CHKA", "CHKB")]
    with EmulatorController(configs) as controller:
        clients = {
            name: sa_client(SqlServerTarget(name, "127.0.0.1", controller[name].port, "sa", SA_PASSWORD))
            for name in ("CHKA", "CHKB")
        }
        try:
            runs = []
            for name in ("CHKA", "CHKB", "CHKA"):  # fail on A; elsewhere from scratch; back on A: resume
                sa = clients[name]
                job = create_job(sa, [{"subsystem": "SSIS", "command": CHECKPOINTED}], f"chk {name} {len(runs)}")
                sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", job)
                wait_until_idle(sa, job)
                execution = sa.run("SELECT MAX(execution_id) FROM SSISDB.catalog.executions")[0][0]
                runs.append((history(sa, job)[-1][2], task_messages(sa, execution)))
        finally:
            for sa in clients.values():
                sa.close()
    assert runs[0] == (FAILED, ["Extract:Information: Task completed."])
    assert runs[1] == (FAILED, ["Extract:Information: Task completed."])  # CHKB has no checkpoint: from scratch
    assert runs[2][0] == SUCCEEDED
    assert runs[2][1] == [
        "Checkpointed:Information: The package restarted from checkpoint file "
        '"C:\\SSIS\\Checkpoints\\Checkpointed.chk". The package was configured to restart from checkpoint.',
        "Load facts:Information: Task completed.",
        "Publish:Information: Task completed.",
    ]
