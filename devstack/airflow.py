"""A real Airflow 3 deployment on this machine: one process per component, LocalExecutor or Celery.

The metadata database is SQLite in the Airflow home unless a SQLAlchemy URL is given (the system
tests pass a PostgreSQL one). Connections come from the environment (``AIRFLOW_CONN_<ID>``), the
simple auth manager has one admin user with a known password, and the API server takes a free port.

Given a Celery broker URL (``celery_broker``), the deployment runs the CeleryExecutor instead, with the
metadata database as Celery's result backend; ``distributed_components`` lists its processes: several
Celery workers and triggerers, each with a host name of its own (``devstack.hostname``).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import hostname
from .api import AirflowApi
from .processes import ManagedProcess, free_port

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# The scheduler (LocalExecutor workers), the triggerers and Celery workers would serve their log files
# over HTTP on every interface. Every component runs on this machine, so the API server reads the files.
COMPONENT_ARGS = {
    "scheduler": ("--skip-serve-logs",),
    "triggerer": ("--skip-serve-logs",),
    "celery worker": ("--skip-serve-logs",),
}
USERNAME = "admin"
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Component:
    """One Airflow process: its CLI command (``"triggerer"``, ``"celery worker"``), its name in
    ``AirflowDeployment.processes`` and its log's, further arguments, and the host name Airflow records
    for it (task instances' and jobs' ``hostname``) when several run on this machine."""

    command: str
    name: str
    args: tuple[str, ...] = ()
    hostname: str | None = None

    @classmethod
    def of(cls, component: str | Component) -> Component:
        return component if isinstance(component, Component) else cls(component, component.replace(" ", "-"))


def distributed_components(workers: int = 2, triggerers: int = 2, concurrency: int = 8) -> list[Component]:
    """API server, scheduler and DAG processor, then ``workers`` Celery workers (``worker1``...) and
    ``triggerers`` triggerers (``triggerer1``...), each with a Celery and an Airflow host name of its own."""
    components = [Component.of(name) for name in ("api-server", "scheduler", "dag-processor")]
    for n in range(1, workers + 1):
        args = ("--celery-hostname", f"worker{n}@%h", "--concurrency", str(concurrency))
        components.append(Component("celery worker", f"worker{n}", args, hostname=f"worker{n}"))
    components += [Component("triggerer", f"triggerer{n}", hostname=f"triggerer{n}") for n in range(1, triggerers + 1)]
    return components


class AirflowDeployment:
    """``start()`` migrates the database and starts every component; ``stop()`` stops them all."""

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        connections: Mapping[str, Mapping[str, Any]],
        *,
        database_url: str | None = None,
        password: str = "admin",
        settings: Mapping[str, str] | None = None,
        celery_broker: str | None = None,
    ) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.port = free_port()
        self.password = password
        self.database_url = database_url or f"sqlite:///{home / 'airflow.db'}"
        self.processes: dict[str, ManagedProcess] = {}
        self.components: dict[str, Component] = {}
        self._env = self._environment(connections, {**self._celery_settings(celery_broker), **(settings or {})})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def username(self) -> str:
        return USERNAME

    def _celery_settings(self, broker: str | None) -> dict[str, str]:
        """The CeleryExecutor with this broker, its results in the metadata database (not SQLite)."""
        if broker is None:
            return {}
        if not self.database_url.startswith("postgresql"):
            raise ValueError("the CeleryExecutor needs a PostgreSQL metadata database, not SQLite")
        backend = "db+" + self.database_url  # Celery's SQLAlchemy backend, the same driver as Airflow's
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": backend,
        }

    def _environment(self, connections: Mapping[str, Mapping[str, Any]], settings: Mapping[str, str]) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "64",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__PROVIDERS_ODBC__ALLOW_DRIVER_IN_EXTRA": "True",
                # No log server runs (COMPONENT_ARGS); ports of our own keep the API server from asking
                # another deployment's log server on the default ports.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                # New DAG files are noticed within seconds, not the default five minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            }
        )
        for conn_id, fields in connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(fields))
        env.update(settings)
        return env

    @property
    def environment(self) -> dict[str, str]:
        return dict(self._env)

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` CLI command with this deployment's environment."""
        done = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise RuntimeError(f"airflow {' '.join(args)} exited with {done.returncode}:\n{output}")
        return done

    def start(self, components: Iterable[str | Component] = COMPONENTS, timeout: float = 180) -> AirflowApi:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({USERNAME: self.password}))
        self.airflow("db", "migrate")
        for component in components:
            self.start_component(component)
        api = AirflowApi(self.url, USERNAME, self.password)
        self.wait_healthy(api, timeout)
        return api

    def start_component(self, component: str | Component) -> ManagedProcess:
        """Start a component, or start again one that ran before under that name."""
        if isinstance(component, str):
            component = self.components.get(component) or Component.of(component)
        spec = component
        binary = str(Path(sys.executable).with_name("airflow"))
        argv = [binary, *spec.command.split(), *COMPONENT_ARGS.get(spec.command, ()), *spec.args]
        env = dict(self._env)
        if spec.hostname is not None:
            python_path = [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
            env |= {
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": hostname.CALLABLE,
                hostname.HOSTNAME_ENV: spec.hostname,
                "PYTHONPATH": ":".join(python_path),
            }
        process = ManagedProcess(spec.name, argv, self.home / "components" / f"{spec.name}.log", env)
        self.components[spec.name] = spec
        self.processes[spec.name] = process.start()
        return process

    def wait_healthy(self, api: AirflowApi, timeout: float = 180) -> None:
        """Until the API answers and reports every started component healthy, every triggerer has a live
        job, and every Celery worker has said it is ready."""
        commands = [c.command for c in self.components.values()]
        wanted = {"scheduler", "triggerer", "dag_processor"} & {c.replace("-", "_") for c in commands}
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if not process.alive():
                    raise RuntimeError(f"airflow {name} exited:\n{process.tail()}")
            try:
                last = api.health()
                healthy = all(last.get(c, {}).get("status") == "healthy" for c in wanted | {"metadatabase"})
                if healthy and self._triggerers_alive(api, commands.count("triggerer")) and self._workers_ready():
                    return
            except OSError as exc:
                last = exc
            time.sleep(1)
        raise RuntimeError(f"Airflow was not healthy within {timeout} s: {last}")

    @staticmethod
    def _triggerers_alive(api: AirflowApi, count: int) -> bool:
        return count <= 1 or len(api.jobs("TriggererJob", alive=True)) >= count

    def _workers_ready(self) -> bool:
        """Celery prints "<hostname> ready." once a worker consumes its queues."""
        workers = [self.processes[c.name] for c in self.components.values() if c.command == "celery worker"]
        return all(" ready." in process.output() for process in workers)

    def stop(self) -> None:
        """Every component at once (each gets its SIGTERM grace), then the API server's port is free."""
        with ThreadPoolExecutor(max_workers=len(self.processes) or 1) as pool:
            list(pool.map(lambda p: p.stop(), self.processes.values()))
