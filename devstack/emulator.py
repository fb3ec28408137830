"""The emulated SQL Servers as a child process: ``python -m sqlagent_emulator --config FILE``."""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from sqlagent_emulator.config import ServerConfig
from sqlagent_emulator.control import read_token, send_command

from .processes import ManagedProcess

_READY = re.compile(r"^READY name=(\S+) host=(\S+) port=(\d+)(?P<fields>[^\n]*)", re.M)
_CONTROL = re.compile(r"^CONTROL host=(\S+) port=(\d+) token_file=(\S+)", re.M)
# The environment variables demo/servers.toml takes its logins' passwords from (password_env).
DEMO_PASSWORDS = {"sa": "SSIS_LB_DEMO_SA_PASSWORD", "airflow_runner": "SSIS_LB_DEMO_RUNNER_PASSWORD"}


def demo_passwords(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """A password per demo login, made for this run (kept when ``environ`` already has one), set in
    ``environ`` (a dict to hand to the emulator; default ``os.environ``) and returned by variable."""
    environ = os.environ if environ is None else environ
    for variable in DEMO_PASSWORDS.values():
        environ.setdefault(variable, "Pw!" + secrets.token_hex(12))
    return {variable: environ[variable] for variable in DEMO_PASSWORDS.values()}


class EmulatorProcess:
    """Start the servers of one config file, wait for their READY lines, send control commands."""

    def __init__(
        self, config: Path, log_path: Path, python: str = sys.executable, env: Mapping[str, str] | None = None
    ) -> None:
        """``env``: the emulator's whole environment (default: this process's), e.g. with its passwords."""
        self.config = config
        self.process = ManagedProcess(
            "emulator", [python, "-m", "sqlagent_emulator", "--config", str(config)], log_path, env=env
        )
        self.ports: dict[str, int] = {}
        self.certs: dict[str, str] = {}  # server name -> PEM of its TLS certificate (READY ... cert=PATH)
        self.cas: dict[str, str] = {}  # server name -> PEM of the CA that signed it, when the emulator made it
        self.control_port: int | None = None
        self._control_token: str | None = None

    def start(self, timeout: float = 60.0) -> EmulatorProcess:
        self.process.start()
        deadline = time.monotonic() + timeout
        while True:
            text = self.process.output()
            control = _CONTROL.search(text)
            if control:
                ready = list(_READY.finditer(text))
                self.ports = {m.group(1): int(m.group(3)) for m in ready}
                fields = {m.group(1): dict(f.split("=", 1) for f in m.group("fields").split()) for m in ready}
                self.certs = {name: f["cert"] for name, f in fields.items() if "cert" in f}
                self.cas = {name: f["ca"] for name, f in fields.items() if "ca" in f}
                self.control_port = int(control.group(2))
                self._control_token = read_token(control.group(3))
                return self
            if not self.process.alive():
                raise RuntimeError(f"the emulator exited before it was ready:\n{self.process.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator was not ready within {timeout} s:\n{self.process.tail()}")
            time.sleep(0.1)

    def control(self, command: str, server: str | None = None, value: str | None = None) -> dict[str, Any]:
        """One control command (``agent-stop``, ``offline``, ``hang``, ``status`` ...), as the control CLI
        sends it, with the token from the file the emulator named."""
        assert self.control_port is not None and self._control_token is not None, "start() first"
        return send_command(self.control_port, command, server, value, token=self._control_token)

    def stop(self) -> None:
        self.process.stop()


def operator_connections(configs: list[ServerConfig], ports: dict[str, int]) -> dict[str, dict[str, Any]]:
    """An Airflow ``mssql`` connection per server (conn id = lower-case server name), with the login
    that holds only SQLAgentOperatorRole: the least privilege the provider needs. To a server that
    forces encryption, the whole session is encrypted (pymssql ``encryption=require``) and the host is
    ``localhost``, the name in the emulator's certificate (verified when FREETDSCONF names its CA)."""
    connections = {}
    for config in configs:
        login = next((lg for lg in config.logins if "SQLAgentOperatorRole" in lg.roles), None)
        if login is None:
            raise ValueError(f"server {config.name}: no login with SQLAgentOperatorRole in the config")
        if config.encryption == "strict":
            raise ValueError(f"server {config.name}: pymssql cannot connect with TDS 8.0 (strict encryption)")
        encrypt = config.encryption == "required"
        connections[config.name.lower()] = {
            "conn_type": "mssql",
            "host": "localhost" if encrypt else "127.0.0.1",
            "port": ports[config.name],
            "login": login.name,
            "password": login.password,
            "schema": "msdb",
            **({"extra": {"encryption": "require"}} if encrypt else {}),
        }
    return connections


def encrypted_config(config: Path, into: Path) -> Path:
    """A copy of the configuration whose servers force encryption (``encryption = "required"``)."""
    lines = []
    for line in config.read_text().splitlines():
        lines.append(line)
        if line.strip() == "[[servers]]":
            lines.append('encryption = "required"')
    into.write_text("\n".join(lines) + "\n")
    return into


def freetds_trusting(ca: str, into: Path) -> Path:
    """A FreeTDS configuration (for ``FREETDSCONF``) that verifies servers against this CA file."""
    into.write_text(f"[global]\n\tca file = {ca}\n")
    return into
