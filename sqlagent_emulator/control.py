"""The emulator's control channel: JSON lines over a loopback TCP port, never over TDS.

The command line prints ``CONTROL host=127.0.0.1 port=<PORT>`` next to the READY lines;
``sqlagent-emulator control --port PORT COMMAND SERVER [VALUE]`` sends one command.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .server import HOST, EmulatedServer


def _status(server: EmulatedServer) -> dict[str, Any]:
    return {
        "name": server.name,
        "port": server.port,
        "online": server.online,
        "agent_running": server.agent.is_running,
        "agent_session": server.agent.session_id,
        "running_jobs": sorted(job.job_name for job in server.agent.running_jobs()),
        "latency": server.reply_delay,
    }


async def _latency(server: EmulatedServer, value: str | None) -> None:
    server.set_latency(float(value or 0))


COMMANDS: dict[str, Callable[[EmulatedServer, str | None], Awaitable[Any]]] = {
    "agent-stop": lambda s, _v: s.agent.stop(),
    "agent-start": lambda s, _v: s.agent.start(),
    "agent-restart": lambda s, _v: s.agent.restart(),
    "offline": lambda s, _v: s.take_offline(),
    "online": lambda s, _v: s.bring_online(),
    "restart": lambda s, _v: s.restart_service(),
    "drop-connections": lambda s, _v: s.drop_connections(),
    "latency": _latency,
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
    await COMMANDS[command](server, request.get("value"))
    return {"ok": True, "server": _status(server)}


async def serve_control(servers: Mapping[str, EmulatedServer], port: int = 0) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    reply = await execute(servers, json.loads(line))
                except Exception as exc:  # a bad request must not take the emulator down
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, HOST, port)


def send_command(port: int, command: str, server: str | None = None, value: str | None = None) -> dict[str, Any]:
    """Client side, for scripts and tests."""
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(json.dumps({"command": command, "server": server, "value": value}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)
