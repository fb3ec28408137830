"""The emulator's control channel: JSON lines over a loopback TCP port, never over TDS.

The command line prints ``CONTROL host=127.0.0.1 port=<PORT> token_file=<PATH>`` next to the READY
lines. Every request carries the token read from that file, which only the emulator's owner can read
(mode 0600 in a 0700 directory): another local user can reach the port but cannot take servers
offline. ``sqlagent-emulator control --port PORT --token-file PATH COMMAND SERVER [VALUE]`` sends one
command.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from .faults import Fault
from .server import HOST, EmulatedServer

TOKEN_FILE_NAME = "control-token"


def _status(server: EmulatedServer) -> dict[str, Any]:
    return {
        "name": server.name,
        "port": server.port,
        "online": server.online,
        "fault": server.faults.fault.value,
        "delay_ms": server.faults.delay_ms,
        "held_answers": server.faults.held,
        "agent_running": server.agent.is_running,
        "agent_session": server.agent.session_id,
        "running_jobs": sorted(job.job_name for job in server.agent.running_jobs()),
    }


async def _slow(server: EmulatedServer, value: str | None) -> None:
    try:
        delay_ms = float(value or "")
    except ValueError:
        raise ValueError(f"slow needs a delay in milliseconds, e.g. 'slow SQL1 500'; got {value!r}") from None
    await server.set_fault(Fault.SLOW, delay_ms)


async def _pickup_delay(server: EmulatedServer, value: str | None) -> None:
    try:
        seconds = float(value or "")
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"pickup-delay needs seconds (0 or more), e.g. 'pickup-delay SQL1 2'; got {value!r}")
    server.agent.pickup_delay = seconds


def _fault(fault: Fault) -> Callable[[EmulatedServer, str | None], Awaitable[None]]:
    return lambda server, _value: server.set_fault(fault)


COMMANDS: dict[str, Callable[[EmulatedServer, str | None], Awaitable[Any]]] = {
    "agent-stop": lambda s, _v: s.agent.stop(),
    "agent-start": lambda s, _v: s.agent.start(),
    "agent-restart": lambda s, _v: s.agent.restart(),
    "offline": lambda s, _v: s.take_offline(),
    "online": lambda s, _v: s.bring_online(),
    "restart": lambda s, _v: s.restart_service(),
    "drop-connections": lambda s, _v: s.drop_connections(),
    "pickup-delay": _pickup_delay,
    Fault.HANG.value: _fault(Fault.HANG),
    Fault.STALL.value: _fault(Fault.STALL),
    Fault.SLOW.value: _slow,
    Fault.DROP.value: _fault(Fault.DROP),
    Fault.NORMAL.value: _fault(Fault.NORMAL),
}


async def execute(servers: Mapping[str, EmulatedServer], request: dict[str, Any]) -> dict[str, Any]:
    """Run one request ``{"command", "server", "value"}``; ``status`` without a server lists all."""
    command = request.get("command")
    wanted = request.get("server")
    if command == "status":
        return {"ok": True, "servers": [_status(s) for s in servers.values() if wanted in (None, s.name)]}
    if command not in COMMANDS:
        return {"ok": False, "error": f"unknown command {command!r}; known: status, {', '.join(COMMANDS)}"}
    server = next((s for s in servers.values() if s.name.lower() == str(wanted).lower()), None)
    if server is None:
        return {"ok": False, "error": f"unknown server {wanted!r}; known: {', '.join(servers)}"}
    try:
        await COMMANDS[command](server, request.get("value"))
    except ValueError as exc:  # a bad value, e.g. 'slow' without a delay
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "server": _status(server)}


class ControlToken:
    """A random token in a file only this user can read; removed again by :meth:`remove`."""

    def __init__(self) -> None:
        self.value = secrets.token_urlsafe(32)
        self._directory = Path(tempfile.mkdtemp(prefix="sqlagent-emulator-"))  # mode 0700
        self.path = self._directory / TOKEN_FILE_NAME
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(self.value)

    def accepts(self, presented: object) -> bool:
        return isinstance(presented, str) and hmac.compare_digest(presented.encode(), self.value.encode())

    def remove(self) -> None:
        shutil.rmtree(self._directory, ignore_errors=True)


async def serve_control(servers: Mapping[str, EmulatedServer], token: ControlToken, port: int = 0) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict) or not token.accepts(request.get("token")):
                        writer.write(
                            json.dumps({"ok": False, "error": "refused: wrong or missing control token"}).encode()
                            + b"\n"
                        )
                        await writer.drain()
                        return
                    reply = await execute(servers, request)
                except Exception as exc:  # a bad request must not take the emulator down
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, HOST, port)


def read_token(path: str | os.PathLike[str]) -> str:
    return Path(path).read_text().strip()


def send_command(
    port: int, command: str, server: str | None = None, value: str | None = None, *, token: str
) -> dict[str, Any]:
    """Client side, for scripts and tests: ``token`` is the content of the emulator's token file."""
    request = {"command": command, "server": server, "value": value, "token": token}
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)
