"""``sys.dm_server_services``: the instance's SQL Server and SQL Server Agent services.

Source: https://learn.microsoft.com/en-us/sql/relational-databases/system-dynamic-management-views/sys-dm-server-services-transact-sql
(columns, types, the startup_type and status codes). Full-Text and Launchpad are not installed here, so
the view has two rows, named as on Windows: ``SQL Server (<instance>)`` and ``SQL Server Agent (<instance>)``
with the instance @@SERVICENAME gives. Every start gives a service a new ``process_id`` and stamps
``last_startup_time``; a stop sets status 1 (Stopped) and clears ``process_id``, keeping the time.

``last_startup_time`` is datetimeoffset(7) on SQL Server; the emulator serves datetimeoffset as datetime2
(``sqltypes``), so it holds the server's local time (``Engine.now()``) without the offset, as
SYSDATETIMEOFFSET() does here. Runs on the engine thread, as every write does.
"""

from __future__ import annotations

import datetime
import enum
import itertools
import sqlite3

from .results import SqlType
from .storage import to_storage

TABLE = '"master"."sys.dm_server_services"'
RUNNING, STOPPED = 4, 1
_STATUS_DESC = {RUNNING: "Running", STOPPED: "Stopped"}
AUTOMATIC = 2  # startup_type 2, "Automatic"
_PIDS = itertools.count(4104, 4)  # Windows process ids are multiples of 4; unique within this emulator


class Service(enum.Enum):
    ENGINE = "SQL Server"
    AGENT = "SQL Server Agent"


def create_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (servicename NVARCHAR(256) COLLATE NOCASE PRIMARY KEY, "
        "startup_type INT, startup_type_desc NVARCHAR(256), status INT, status_desc NVARCHAR(256), "
        "process_id INT, last_startup_time DATETIMEOFFSET(7), service_account NVARCHAR(256), "
        "filename NVARCHAR(256), is_clustered NVARCHAR(1), cluster_nodename NVARCHAR(256), "
        "instant_file_initialization_enabled NVARCHAR(1))"
    )


def service_name(service: Service, instance: str) -> str:
    return f"{service.value} ({instance})"


def install(conn: sqlite3.Connection, instance: str, major_version: str) -> None:
    """A new SQL Server process: both rows present and stopped (a start time kept on disk stays)."""
    create_table(conn)
    default = instance == "MSSQLSERVER"
    binn = f"C:\\Program Files\\Microsoft SQL Server\\MSSQL{major_version}.{instance}\\MSSQL\\Binn"
    rows = {
        Service.ENGINE: (
            "NT Service\\MSSQLSERVER" if default else f"NT Service\\MSSQL${instance}",
            f'"{binn}\\sqlservr.exe" -s{instance}',
            "Y",
        ),
        Service.AGENT: (
            "NT Service\\SQLSERVERAGENT" if default else f"NT Service\\SQLAgent${instance}",
            f'"{binn}\\SQLAGENT.EXE" -i {instance}',
            None,  # "does not apply to other services such as the SQL Server Agent"
        ),
    }
    for service, (account, filename, ifi) in rows.items():
        conn.execute(
            f"INSERT OR IGNORE INTO {TABLE} VALUES (?, ?, 'Automatic', ?, ?, NULL, NULL, ?, ?, 'N', NULL, ?)",
            (service_name(service, instance), AUTOMATIC, STOPPED, _STATUS_DESC[STOPPED], account, filename, ifi),
        )
        mark_stopped(conn, service, instance)


def mark_started(conn: sqlite3.Connection, service: Service, instance: str, now: datetime.datetime) -> int:
    """The service started at ``now`` (server local time): Running, with a new process id, returned."""
    pid = next(_PIDS)
    conn.execute(
        f"UPDATE {TABLE} SET status = ?, status_desc = ?, process_id = ?, last_startup_time = ? WHERE servicename = ?",
        (RUNNING, _STATUS_DESC[RUNNING], pid, to_storage(now, SqlType.DATETIME2), service_name(service, instance)),
    )
    return pid


def mark_stopped(conn: sqlite3.Connection, service: Service, instance: str) -> None:
    conn.execute(
        f"UPDATE {TABLE} SET status = ?, status_desc = ?, process_id = NULL WHERE servicename = ?",
        (STOPPED, _STATUS_DESC[STOPPED], service_name(service, instance)),
    )
