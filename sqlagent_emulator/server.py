"""One emulated SQL Server: a TCP listener on 127.0.0.1 and the SQL engine behind it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .config import ServerConfig
from .sql.engine import Engine
from .tds.connection import TdsConnection

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
T = TypeVar("T")


class EmulatedServer:
    """Owns the engine (driven from one dedicated thread, which serializes SQLite access) and the listener."""

    version = (16, 0, 1000)  # SQL Server 2022 RTM

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.name = config.name
        self.port = config.port
        self.reply_delay = 0.0
        self.engine: Engine
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"engine-{config.name}")
        self._listener: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._spids = itertools.count(51)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on this server's engine thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def start(self) -> None:
        config = self.config
        self.engine = await self.run(
            functools.partial(
                Engine,
                config.name,
                config.logins,
                utc_offset_minutes=config.utc_offset_minutes,
                path=config.state_dir,
            )
        )
        await self.listen()

    async def listen(self) -> None:
        """Accept connections on the configured port (or the one picked the first time, for restarts)."""
        self._listener = await asyncio.start_server(self._accept, HOST, self.port, reuse_address=True)
        self.port = self._listener.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await TdsConnection(self, reader, writer, next(self._spids)).serve()
        finally:
            self._connections.pop(task, None)

    async def drop_connections(self) -> None:
        """Close every open client connection, as a network failure would."""
        tasks = list(self._connections.items())
        for _task, writer in tasks:
            writer.transport.abort()  # the handler sees the connection reset and ends normally
        for task, _writer in tasks:
            with contextlib.suppress(Exception):
                await task

    async def close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        await self.drop_connections()

    async def stop(self) -> None:
        await self.close_listener()
        await self.run(self.engine.close)
        self._executor.shutdown(wait=True)
