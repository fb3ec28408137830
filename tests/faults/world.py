"""The world the fault search runs in: emulated servers of a pool, the Airflow connections to them, and
everything done to them as sysadmin (jobs, history purges, foreign application locks, fault modes).

Nothing here goes through the provider: the harness acts and observes as ``sa`` with its own clients,
so what it records is msdb's word, not the provider's.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ssis_lb.hooks.sql_agent import ADMISSION_RESOURCE, job_lock_resource
from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import Client, create_job
from tests.clients import connect
from tests.conftest import OPERATOR_PASSWORD, SA_PASSWORD, SqlServerTarget, emulator_config
from tests.faults.observer import Observer

NAMES = ("F1", "F2", "F3")
CAPACITY = {"F1": 2, "F2": 1, "F3": 1}
LOGIN_TIMEOUT = 2
NORMAL_QUERY_TIMEOUT = 25  # above fleet.LOCK_TIMEOUT_SECONDS (20), as the provider's docs require
SHORT_QUERY_TIMEOUT = 3  # below it: a lock wait is cut short by the driver
PICKUP_DELAY = 0.3  # seconds Agent takes to pick a request up: an Agent restart meanwhile loses it
# The provider's settings for the harness: quick ticks, no settle hold (no scheduler to race).
AIRFLOW_SETTINGS = {
    "AIRFLOW__SSIS_LB__LOGIN_TIMEOUT": str(LOGIN_TIMEOUT),
    "AIRFLOW__SSIS_LB__QUERY_TIMEOUT": str(NORMAL_QUERY_TIMEOUT),
    "AIRFLOW__SSIS_LB__MONITOR_TICK": "0.5",
    "AIRFLOW__SSIS_LB__DEFER_SETTLE_SECONDS": "0",
}


class SaClient(Client):
    """sa through ODBC 18 with short login and query timeouts, so a faulted server costs seconds."""

    def __init__(self, target: SqlServerTarget, query_timeout: int = 15) -> None:
        self.stack, self.mark = "odbc18", "?"
        self.conn = connect(
            "odbc18", target.host, target.port, "sa", SA_PASSWORD, "msdb", login_timeout=3, query_timeout=query_timeout
        )


def conn_id(server: str) -> str:
    return f"fx_{server.lower()}"


def waitfor(seconds: int) -> dict[str, object]:
    return {"subsystem": "TSQL", "command": f"WAITFOR DELAY '00:00:{seconds:02d}'"}


@dataclass
class ForeignLock:
    """An sa session holding an application lock in msdb, as another starter (or a stuck one) would."""

    server: str
    resource: str
    thread: threading.Thread
    release: threading.Event = field(default_factory=threading.Event)
    held: bool = False  # sp_getapplock granted it (a starter that was not granted every lock starts nothing)


class World:
    """The servers, their connections and the sa-side actions. Use as a context manager."""

    def __init__(self, names: tuple[str, ...] = NAMES) -> None:
        self.names = names
        self.capacity = {n: CAPACITY[n] for n in names}
        self.controller = EmulatorController(
            [emulator_config(name=n, cpus=self.capacity[n]) for n in names]  # Agent's own limit is not the pool's
        )
        self.targets: dict[str, SqlServerTarget] = {}
        self.observer: Observer | None = None
        self.jobs: dict[str, dict[str, str]] = {}  # job name -> server -> job_id (current)
        self.fault_timers: list[threading.Timer] = []
        self.locks: list[ForeignLock] = []
        self.removed: set[str] = set()  # servers whose Airflow connection is removed now
        self.query_timeout: dict[str, int] = {}
        self._saved_env: dict[str, str | None] = {}

    # ------------------------------------------------------------------ lifetime

    def __enter__(self) -> World:
        for key, value in AIRFLOW_SETTINGS.items():
            self._set_env(key, value)
        self.controller.start()
        for name in self.names:
            self.controller.control("pickup-delay", name, str(PICKUP_DELAY))
            self.targets[name] = SqlServerTarget(
                name, "127.0.0.1", self.controller[name].port, "sa", SA_PASSWORD, self.controller
            )
            self.define_connection(name)
        self.observer = Observer(self.targets)
        self.observer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.calm()
        if self.observer is not None:
            self.observer.stop()
        for name in self.names:
            self._set_env(f"AIRFLOW_CONN_{conn_id(name).upper()}", None)
        self.controller.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _set_env(self, key: str, value: str | None) -> None:
        self._saved_env.setdefault(key, os.environ.get(key))
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

    # ------------------------------------------------------------------ connections and settings

    def define_connection(self, name: str, query_timeout: int | None = None) -> None:
        """The server's Airflow connection (pymssql, SQLAgentOperatorRole login); ``query_timeout`` sets the
        connection extra ``timeout`` (the driver's query timeout), else ``[ssis_lb] query_timeout`` applies."""
        target = self.targets[name]
        extra: dict[str, Any] = {"tds_version": "7.4", "login_timeout": LOGIN_TIMEOUT}
        if query_timeout is not None:
            extra["timeout"] = query_timeout
            self.query_timeout[name] = query_timeout
        connection = {
            "conn_type": "mssql",
            "host": target.host,
            "port": target.port,
            "login": "agent_operator_state",  # sees Agent restarts (sys.dm_server_services)
            "password": OPERATOR_PASSWORD,
            "schema": "msdb",
            "extra": extra,
        }
        self._set_env(f"AIRFLOW_CONN_{conn_id(name).upper()}", json.dumps(connection))
        self.removed.discard(name)

    def remove_connection(self, name: str) -> None:
        """The server is taken out of Airflow's connections (decommissioned); its Agent goes on."""
        self._set_env(f"AIRFLOW_CONN_{conn_id(name).upper()}", None)
        self.removed.add(name)

    def set_query_timeout(self, seconds: int) -> None:
        """``[ssis_lb] query_timeout`` for every connection that does not set its own."""
        self._set_env("AIRFLOW__SSIS_LB__QUERY_TIMEOUT", str(seconds))

    def timeouts(self) -> tuple[float, float]:
        """(login, longest query) timeouts in force: bounds on one call."""
        query = max([int(os.environ["AIRFLOW__SSIS_LB__QUERY_TIMEOUT"]), *self.query_timeout.values()])
        return float(LOGIN_TIMEOUT), float(query)

    def pool_names(self) -> list[str]:
        """The servers of the pool as children are given it now (those whose connection was removed are out)."""
        return [n for n in self.names if n not in self.removed]

    def pool(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        """The pool argument of a child: ``names`` (default: the pool now) with their capacities."""
        chosen = self.pool_names() if names is None else names
        return [{"conn_id": conn_id(n), "capacity": self.capacity[n]} for n in chosen]

    # ------------------------------------------------------------------ sa clients and jobs

    @contextlib.contextmanager
    def sa(self, name: str) -> Iterator[Client]:
        with closing(SaClient(self.targets[name])) as client:
            yield client

    def create_job(self, seconds: int, name: str | None = None) -> str:
        """One job (a WAITFOR step of ``seconds``) under the same name on every server."""
        name = name or f"fx job {uuid.uuid4().hex[:6]}"
        for server in self.names:
            self.create_job_on(server, name, seconds)
        return name

    def create_job_on(self, server: str, name: str, seconds: int) -> str:
        with self.sa(server) as sa:
            create_job(sa, [waitfor(seconds)], name)
            job_id = str(sa.run("SELECT job_id FROM msdb.dbo.sysjobs WHERE name = ?", name)[0][0]).upper()
        self.jobs.setdefault(name, {})[server] = job_id
        assert self.observer is not None
        self.observer.name_job(server, job_id, name)
        return job_id

    def fill(self, server: str, seconds: int) -> None:
        """Start other people's jobs on ``server`` (as many as its capacity), running ``seconds``. They are
        started under the server's admission lock and it is kept until Agent shows them: the race with an
        admission that read the load just before (fleet.md, Limits, "Load from other people's jobs") is a
        documented limit, not what this fault is for (children finding the pool full)."""
        names = [f"fx load {uuid.uuid4().hex[:6]}" for _ in range(self.capacity[server])]
        for name in names:
            self.create_job_on(server, name, seconds)
        with self.sa(server) as sa:
            granted = sa.run(
                "DECLARE @r int; EXEC @r = msdb.dbo.sp_getapplock @Resource = ?, @LockMode = 'Exclusive', "
                "@LockOwner = 'Session', @LockTimeout = 10000, @DbPrincipal = 'public'; SELECT @r",
                ADMISSION_RESOURCE,
            )
            if not granted or granted[0][0] < 0:
                raise TimeoutError(f"{server}: the admission lock was not granted to the jobs filling it")
            for name in names:
                sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
            give_up = time.monotonic() + 10
            while time.monotonic() < give_up and not all(self._executing(sa, name) for name in names):
                time.sleep(0.05)

    def recreate_job(self, server: str, name: str, seconds: int) -> bool:
        """sp_delete_job, then the job again under the same name (a new job_id), if it is idle there; the
        history the delete takes with it is recorded first. False when it was running (left alone)."""
        assert self.observer is not None
        with self.sa(server) as sa:
            if self._executing(sa, name):
                return False
            self.observer.poll(server)
            sa.run("EXEC msdb.dbo.sp_delete_job @job_name = ?", name)
        self.create_job_on(server, name, seconds)
        return True

    @staticmethod
    def _executing(sa: Client, name: str) -> bool:
        running = sa.run("EXEC msdb.dbo.sp_help_job @execution_status = 0")
        return any(name in row for row in running)

    def purge_history(self, server: str, name: str) -> None:
        """Agent's history purge for one job (sp_purge_jobhistory when the emulator has it, else the rows
        deleted as sa). The rows are recorded first, so the harness keeps what msdb forgets."""
        assert self.observer is not None
        self.observer.poll(server)
        top = self.observer.last_history_id(server)
        with self.sa(server) as sa:
            try:
                sa.run("EXEC msdb.dbo.sp_purge_jobhistory @job_name = ?", name)
            except Exception as exc:  # not in the emulator yet (2812): the same effect, by hand
                if "2812" not in str(exc) and "sp_purge_jobhistory" not in str(exc):
                    raise
                sa.run(
                    "DELETE FROM msdb.dbo.sysjobhistory WHERE instance_id <= ? AND job_id IN "
                    "(SELECT job_id FROM msdb.dbo.sysjobs WHERE name = ?)",
                    top,
                    name,
                )

    # ------------------------------------------------------------------ faults

    def fault(self, name: str, mode: str, seconds: float, value: str | None = None) -> None:
        """A fault mode (hang, stall, drop, slow) on the server, back to normal after ``seconds``."""
        self.controller.control(mode, name, value)
        timer = threading.Timer(seconds, self._normal, args=(name,))
        timer.daemon = True
        timer.start()
        self.fault_timers.append(timer)

    def _normal(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.controller.control("normal", name)

    def agent_restart(self, name: str) -> None:
        assert self.observer is not None
        self.observer.agent_restarting(name)
        self.controller.control("agent-restart", name)

    def hold_lock(
        self,
        name: str,
        resource: str,
        seconds: float,
        *,
        start_after: float | None = None,
        job: str | None = None,
        start_if: Callable[[], bool] = lambda: True,
    ) -> ForeignLock:
        """An sa session takes ``resource`` (Exclusive, Session owner) in msdb and keeps it ``seconds``;
        with ``start_after``, it starts ``job`` there meanwhile (sp_start_job), as a starter stalled in its
        admission would (a slow worker, another Airflow deployment)."""
        granted = threading.Event()
        holder: ForeignLock

        def hold() -> None:
            with contextlib.suppress(Exception), self.sa(name) as sa:
                rows = sa.run(
                    "DECLARE @r int; EXEC @r = msdb.dbo.sp_getapplock @Resource = ?, @LockMode = 'Exclusive', "
                    "@LockOwner = 'Session', @LockTimeout = 5000, @DbPrincipal = 'public'; SELECT @r",
                    resource,
                )
                holder.held = bool(rows) and rows[0][0] >= 0
                granted.set()
                if not holder.held:
                    return
                began = time.monotonic()
                if start_after is not None and job is not None and not holder.release.wait(start_after) and start_if():
                    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", job)
                holder.release.wait(max(0.0, seconds - (time.monotonic() - began)))
            granted.set()

        holder = ForeignLock(name, resource, threading.Thread(target=hold, daemon=True, name=f"lock {resource}"))
        self.locks.append(holder)
        holder.thread.start()
        granted.wait(10)
        return holder

    def foreign_starter(self, job: str, seconds: float, start_on: str | None, start_after: float = 1.0) -> None:
        """A starter of ``job`` outside this harness's children that follows the fleet's protocol but
        stalls: it holds the job's lock on every server (in name order), starts the job on ``start_on``
        after ``start_after`` seconds (None: never) if it reads the job idle on every server under its
        locks, as the protocol has it, and lets go after ``seconds``."""

        targets = sorted(name for name in self.names if self.jobs[job].get(name) is not None)
        mine: list[ForeignLock] = []

        def idle_everywhere() -> bool:  # the protocol: every lock held, the job idle on every server
            if len(mine) < len(targets) or not all(lock.held for lock in mine):
                return False
            for name in self.names:
                with self.sa(name) as sa:
                    if self._executing(sa, job):
                        return False
            return True

        for name in targets:
            starts = name == start_on
            lock = self.hold_lock(
                name,
                job_lock_resource(job, self.jobs[job][name]),
                seconds,
                start_after=start_after if starts else None,
                job=job if starts else None,
                start_if=idle_everywhere,
            )
            mine.append(lock)

    def calm(self) -> None:
        """Every fault over: modes back to normal, foreign locks released, connections defined again."""
        for timer in self.fault_timers:
            timer.cancel()
        self.fault_timers.clear()
        for name in self.names:
            self._normal(name)
        for lock in self.locks:
            lock.release.set()
        for lock in self.locks:
            lock.thread.join(10)
        self.locks.clear()

    def wait_idle(self, timeout: float = 60) -> bool:
        """Until no job executes on any server (as sa); False on timeout."""
        give_up = time.monotonic() + timeout
        for name in self.names:
            while True:
                try:
                    with self.sa(name) as sa:
                        if not sa.run("EXEC msdb.dbo.sp_help_job @execution_status = 0"):
                            break
                except Exception:
                    pass
                if time.monotonic() > give_up:
                    return False
                time.sleep(0.2)
        return True
