"""One emulated SQL Server: a TCP listener on 127.0.0.1, the SQL engine and SQL Server Agent.

Besides serving clients it has the controls tests and the demo use to imitate failures: stop,
start or restart Agent; take the server off the network and bring it back on the same port;
restart the whole service (state reloaded from ``state_dir`` when set); drop every connection;
a fault mode for answers (hang, stall, slow, drop: see ``faults.py``). None of these is reachable
from an ordinary login.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .agent.catalogobjects import publish_packages
from .agent.logins import login_name
from .agent.packagestore import publish_msdb_packages
from .agent.permissions import check_table_select, database_principals
from .agent.procedures import register_agent_procedures
from .agent.retention import HistoryLimits
from .agent.runner import Agent
from .agent.schema import install_schema
from .agent.setup import ensure_jobs
from .config import ServerConfig
from .faults import Fault, FaultSwitch
from .sql.engine import Engine
from .sql.services import Service
from .tds.certs import configured_identity, generated_identity
from .tds.connection import TdsConnection
from .tds.tls import ServerTls

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
T = TypeVar("T")


class EmulatedServer:
    """Owns the engine (driven from one dedicated thread, which serializes SQLite access), the Agent
    and the listener."""

    version = (16, 0, 1000)  # SQL Server 2022 RTM

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.name = config.name
        self.port = config.port
        self.faults = FaultSwitch()
        self.login_timeout = config.login_timeout_seconds
        self.idle_timeout = config.idle_timeout_seconds
        self.engine: Engine
        self.agent: Agent
        # Agent's job history limits: registry values on a real server, so they outlive service restarts.
        self.history_limits = HistoryLimits(config.jobhistory_max_rows, config.jobhistory_max_rows_per_job)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"engine-{config.name}")
        self._listener: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._spids = itertools.count(51)
        identity = (
            configured_identity(config.certificate, config.private_key)
            if config.certificate and config.private_key
            else generated_identity()
        )
        self.tls = ServerTls(identity, config.encryption)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on this server's engine thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        await self._open_engine()
        await self.run(self.engine.service_started, Service.ENGINE)
        if self.config.agent_running:
            await self.agent.start()
        await self.listen()

    async def _open_engine(self) -> None:
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
        await self.run(install_schema, self.engine)
        self.engine.table_guard = lambda login, ref: check_table_select(login, ref.database, ref.schema, ref.name)
        self.engine.database_principals = database_principals
        self.agent = Agent(
            self.engine,
            self.run,
            asyncio.get_running_loop(),
            cpus=config.cpus,
            speed=config.speed,
            spids=self._spids,
            packages={p.path: p for p in config.packages},
            package_files={p.path: p for p in config.package_files},
            msdb_packages={p.path: p for p in config.msdb_packages},
            minute_seconds=config.agent_minute_seconds,
            allow_cmdexec=config.allow_cmdexec,
            find_login=self.engine.find_login,
            owner_name=lambda sid: login_name(self.engine, sid) or "sa",
            history_limits=self.history_limits,
        )
        await self.run(register_agent_procedures, self.engine.procedures, self.agent)
        await self.run(ensure_jobs, self.engine, config.jobs)
        await self.run(publish_packages, self.engine, config.packages)
        await self.run(publish_msdb_packages, self.engine, config.msdb_packages)

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

    async def stop(self) -> None:
        await self.agent.stop()
        await self.take_offline()
        await self.run(self.engine.close)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ controls and faults

    @property
    def online(self) -> bool:
        return self._listener is not None

    async def drop_connections(self) -> None:
        """Close every open client connection, as a network failure would."""
        tasks = list(self._connections.items())
        for task, writer in tasks:
            writer.transport.abort()  # a handler reading or writing sees the connection reset and ends
            task.cancel()  # one held by a fault mode is not reading: cancelling ends it all the same
        for task, _writer in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def take_offline(self) -> None:
        """Unreachable: stop listening and drop connections. SQL Server and its Agent go on running."""
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        await self.drop_connections()

    async def bring_online(self) -> None:
        if self._listener is None:
            await self.listen()

    async def restart_service(self) -> None:
        """Stop SQL Server (and so its Agent, abandoning running jobs) and start it again on the same
        port; with ``state_dir`` the databases are reloaded from disk, else kept in memory."""
        await self.agent.stop()
        await self.take_offline()
        self.faults.set(Fault.NORMAL)  # a restarted service answers again
        if self.config.state_dir:
            await self.run(self.engine.close)
            await self._open_engine()
        await self.run(self.engine.service_started, Service.ENGINE)  # a new process, a new start time
        await self.agent.start()
        await self.listen()

    async def set_fault(self, fault: Fault, delay_ms: float = 0.0) -> None:
        """Switch the fault mode (``Fault.NORMAL`` ends it); ``delay_ms`` is for ``Fault.SLOW``."""
        self.faults.set(fault, delay_ms)
        log.info("%s: fault mode %s%s", self.name, fault.value, f" {delay_ms:g} ms" if delay_ms else "")
