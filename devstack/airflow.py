"""A real Airflow 3 deployment on this machine: one process per component, LocalExecutor.

The metadata database is SQLite in the Airflow home unless a SQLAlchemy URL is given (the system
tests pass a PostgreSQL one). Connections come from the environment (``AIRFLOW_CONN_<ID>``), the
simple auth manager has one admin user with a known password, and the API server takes a free port.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .api import AirflowApi
from .processes import ManagedProcess, free_port

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# The scheduler (LocalExecutor workers) and the triggerer would serve their log files over HTTP on
# every interface. Every component runs on this machine, so the API server reads the files itself.
COMPONENT_ARGS = {"scheduler": ("--skip-serve-logs",), "triggerer": ("--skip-serve-logs",)}
USERNAME = "admin"


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
    ) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.port = free_port()
        self.password = password
        self.database_url = database_url or f"sqlite:///{home / 'airflow.db'}"
        self.processes: dict[str, ManagedProcess] = {}
        self._env = self._environment(connections, settings or {})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def username(self) -> str:
        return USERNAME

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

    def start(self, components: Iterable[str] = COMPONENTS, timeout: float = 180) -> AirflowApi:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({USERNAME: self.password}))
        self.airflow("db", "migrate")
        for name in components:
            self.start_component(name)
        api = AirflowApi(self.url, USERNAME, self.password)
        self.wait_healthy(api, timeout)
        return api

    def start_component(self, name: str) -> ManagedProcess:
        binary = str(Path(sys.executable).with_name("airflow"))
        argv = [binary, name, *COMPONENT_ARGS.get(name, ())]
        process = ManagedProcess(name, argv, self.home / "components" / f"{name}.log", self._env)
        self.processes[name] = process.start()
        return process

    def wait_healthy(self, api: AirflowApi, timeout: float = 180) -> None:
        """Until the API answers and reports every started component healthy."""
        wanted = {"scheduler", "triggerer", "dag_processor"} & {n.replace("-", "_") for n in self.processes}
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if not process.alive():
                    raise RuntimeError(f"airflow {name} exited:\n{process.tail()}")
            try:
                last = api.health()
                if all(last.get(c, {}).get("status") == "healthy" for c in wanted | {"metadatabase"}):
                    return
            except OSError as exc:
                last = exc
            time.sleep(1)
        raise RuntimeError(f"Airflow was not healthy within {timeout} s: {last}")

    def stop(self) -> None:
        """Every component at once (each gets its SIGTERM grace), then the API server's port is free."""
        with ThreadPoolExecutor(max_workers=len(self.processes) or 1) as pool:
            list(pool.map(lambda p: p.stop(), self.processes.values()))
