"""SSISDB's catalog views, filtered row by row as SSISDB filters them.

SSISDB keeps its data in ``internal.*`` tables and shows it through ``catalog.*`` views. Each view lists a
row only when the caller may read the operation it belongs to; rows the caller may not read are left out,
and no error is raised:

- catalog.executions, catalog.event_messages, catalog.operation_messages pages, "Permissions": READ
  permission on the operation, membership of ``ssis_admin``, or of sysadmin; "row-level security is
  enforced; only rows that you have permission to view are shown"
  (https://learn.microsoft.com/en-us/sql/integration-services/system-views/catalog-executions-ssisdb-database,
  .../catalog-event-messages, .../catalog-operation-messages-ssisdb-database);
- ``ssis_logreader`` (new in SQL Server 2016: "What's new in Integration Services in SQL Server 2016")
  "provides permissions to access all the views related SSISDB operational logs", executions,
  event_messages and operation_messages among them ("Integration Services Roles (SSIS Service)",
  https://learn.microsoft.com/en-us/sql/integration-services/security/integration-services-roles-ssis-service);
- "When you have permission to perform an operation on the server, you also have permission to view
  information about the operation": the caller who created the operation reads it. Explicit grants
  (catalog.grant_permission) are not emulated.

The catalog's objects (catalog.folders, catalog.projects, catalog.packages pages, "Permissions"): READ on
the folder, on the project (for a package: on its project), membership of ``ssis_admin``, or of sysadmin;
"Row-level security is enforced". ``ssis_logreader`` is not listed there: it reads logs, not objects
(https://learn.microsoft.com/en-us/sql/integration-services/system-views/catalog-folders-ssisdb-database,
.../catalog-projects-ssisdb-database, .../catalog-packages-ssisdb-database). As grants are not emulated,
only the two roles see these rows.

The views are SQLite views over the ``internal.*`` tables with a WHERE clause calling ``ssisdb_may_read``
(operations) or ``ssisdb_may_read_objects`` (folders, projects, packages), which look at the login of the
session running the query (``Engine.active_session``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..sql.names import quote_ident

if TYPE_CHECKING:
    from ..sql.engine import Engine

SSIS_ADMIN = "ssis_admin"
SSIS_LOGREADER = "ssis_logreader"
_READ_ALL = frozenset({"sysadmin", SSIS_ADMIN, SSIS_LOGREADER})
_READ_ALL_OBJECTS = frozenset({"sysadmin", SSIS_ADMIN})
MAY_READ = "ssisdb_may_read"
MAY_READ_OBJECTS = "ssisdb_may_read_objects"

EXECUTIONS = "internal.executions"
EVENT_MESSAGES = "internal.event_messages"
OPERATION_MESSAGES = "internal.operation_messages"
FOLDERS = "internal.folders"
PROJECTS = "internal.projects"
PACKAGES = "internal.packages"

_CALLER_OF = f"(SELECT e.caller_name FROM {quote_ident(EXECUTIONS)} e WHERE e.execution_id = m.operation_id)"
VIEWS = {
    "catalog.executions": f"SELECT * FROM {quote_ident(EXECUTIONS)} WHERE {MAY_READ}(caller_name)",
    "catalog.event_messages": f"SELECT m.* FROM {quote_ident(EVENT_MESSAGES)} m WHERE {MAY_READ}({_CALLER_OF})",
    "catalog.operation_messages": (
        f"SELECT m.* FROM {quote_ident(OPERATION_MESSAGES)} m WHERE {MAY_READ}({_CALLER_OF})"
    ),
    "catalog.folders": f"SELECT * FROM {quote_ident(FOLDERS)} WHERE {MAY_READ_OBJECTS}()",
    "catalog.projects": f"SELECT * FROM {quote_ident(PROJECTS)} WHERE {MAY_READ_OBJECTS}()",
    "catalog.packages": f"SELECT * FROM {quote_ident(PACKAGES)} WHERE {MAY_READ_OBJECTS}()",
}
# Before the views, the catalog.* names were plain tables: a persisted SSISDB is moved over once.
_LEGACY_TABLES = {"catalog.executions": EXECUTIONS, "catalog.event_messages": EVENT_MESSAGES}


def may_read(engine: Engine, caller_name: Any) -> int:
    """1 when the session's login may read an operation created by ``caller_name``."""
    session = engine.active_session
    if session is None:  # the engine's own statements
        return 1
    login = session.login
    if {role.lower() for role in login.roles} & _READ_ALL:
        return 1
    return int(caller_name is not None and str(caller_name).lower() == login.name.lower())


def may_read_objects(engine: Engine) -> int:
    """1 when the session's login sees every folder, project and package (no READ grants are emulated)."""
    session = engine.active_session
    if session is None:
        return 1
    return int(bool({role.lower() for role in session.login.roles} & _READ_ALL_OBJECTS))


def _objects(engine: Engine) -> dict[str, str]:
    rows = engine.conn.execute('SELECT name, type FROM "SSISDB".sqlite_master').fetchall()
    return {name.lower(): kind for name, kind in rows}


def migrate_legacy_tables(engine: Engine) -> None:
    """Rename the catalog.* tables of a state directory written before the views existed."""
    objects = _objects(engine)
    for old, new in _LEGACY_TABLES.items():
        if objects.get(old) == "table" and new not in objects:
            engine.conn.execute(f'ALTER TABLE "SSISDB".{quote_ident(old)} RENAME TO {quote_ident(new)}')
    engine.catalog.invalidate()


def install_views(engine: Engine) -> None:
    """Register ``ssisdb_may_read`` on this connection and create the missing catalog views."""
    engine.conn.create_function(MAY_READ, 1, lambda caller: may_read(engine, caller))
    engine.conn.create_function(MAY_READ_OBJECTS, 0, lambda: may_read_objects(engine))
    objects = _objects(engine)
    for name, select in VIEWS.items():
        if name not in objects:
            engine.conn.execute(f'CREATE VIEW "SSISDB".{quote_ident(name)} AS {select}')
    engine.catalog.invalidate()
