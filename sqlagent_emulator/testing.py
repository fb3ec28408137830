"""A controller that runs emulated servers on a background event loop, for tests and tools.

with EmulatorController([ServerConfig(...)]) as emulator:
    port = emulator["SQL1"].port
    emulator.control("hang", "SQL1")     # the control channel's commands, in process (no token needed)
    emulator.control("normal", "SQL1")
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from .config import ServerConfig
from .control import execute
from .server import EmulatedServer

T = TypeVar("T")


class EmulatorController:
    def __init__(self, configs: Iterable[ServerConfig]) -> None:
        self.servers = {c.name: EmulatedServer(c) for c in configs}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sqlagent-emulator", daemon=True)

    def __getitem__(self, name: str) -> EmulatedServer:
        return self.servers[name]

    def cert_path(self, name: str) -> str:
        """The PEM file of the server's TLS certificate (to pin it, e.g. ODBC 18 ``ServerCertificate=``)."""
        return str(self.servers[name].tls.identity.certificate)

    def ca_path(self, name: str) -> str | None:
        """The PEM file of the CA that signed it, when the emulator made the certificate (``cafile=``)."""
        ca = self.servers[name].tls.identity.ca
        return str(ca) if ca else None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the emulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def control(self, command: str, server: str | None = None, value: str | None = None) -> dict[str, Any]:
        """One control command (``hang``, ``slow`` with ``value="500"``, ``offline`` ...) as the CLI sends it.

        Raises ``RuntimeError`` with the channel's message when the command is refused."""
        reply = self.call(execute(self.servers, {"command": command, "server": server, "value": value}))
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error"))
        return reply

    def start(self) -> EmulatorController:
        self._thread.start()
        for server in self.servers.values():
            self.call(server.start())
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            self.call(server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> EmulatorController:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
