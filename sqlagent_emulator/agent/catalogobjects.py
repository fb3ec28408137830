"""The SSIS catalog's folders, projects and packages, published from the server's configured packages.

A configured package ``\\SSISDB\\<folder>\\<project>\\<package>.dtsx`` is what the emulated catalog can run
(subsystems.run_ssis); here it also becomes a row of ``catalog.folders``, ``catalog.projects`` and
``catalog.packages`` (behind them ``internal.*``, filtered by catalogviews.py), so a client can ask the
catalog whether a path exists, as it would on SQL Server. Columns follow Microsoft's pages:
https://learn.microsoft.com/en-us/sql/integration-services/system-views/catalog-folders-ssisdb-database,
.../catalog-projects-ssisdb-database, .../catalog-packages-ssisdb-database.

The rows are rebuilt from the configuration at every start (a persisted state directory follows the
configuration). Names compare case-insensitively, as SSISDB's default collation does. The objects are
owned by ``dbo`` (the user sysadmin logins map to in a database), SID 0x01 as ``sa``'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..sql.engine import Login
from ..sql.results import TypedValue
from ..sql.sqltypes import type_of_python
from .catalogviews import FOLDERS, PACKAGES, PROJECTS
from .logins import SA_SID
from .model import PackageSpec

if TYPE_CHECKING:
    from ..sql.engine import Engine, SqlSession

OWNER = "dbo"
_GUIDS = uuid.UUID("0b7f3a52-51f4-4d3e-9f0e-5a1c2f6b8d11")  # package_guid: stable per catalog path


def _run(session: SqlSession, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    typed = {f"@{k}": TypedValue(v, type_of_python(v)) for k, v in params.items()}
    sets = [rs for r in session.run_internal(sql, typed) for rs in r.result_sets]
    return sets[-1].rows if sets else []


def catalog_tree(packages: Iterable[PackageSpec]) -> dict[str, dict[str, list[str]]]:
    """folder -> project -> package names, first spelling kept, duplicates (any case) dropped, in order."""
    tree: dict[str, dict[str, list[str]]] = {}
    folders: dict[str, str] = {}
    for spec in packages:
        folder, project, package = spec.parts
        folder = folders.setdefault(folder.lower(), folder)
        projects = tree.setdefault(folder, {})
        project = next((p for p in projects if p.lower() == project.lower()), project)
        names = projects.setdefault(project, [])
        if package.lower() not in {n.lower() for n in names}:
            names.append(package)
    return tree


def publish_packages(engine: Engine, packages: Iterable[PackageSpec]) -> int:
    """Make catalog.folders/projects/packages list exactly the configured packages; returns how many."""
    session = engine.open_session(Login("sa", "", frozenset({"sysadmin"})), 0, "SSISDB")
    count = 0
    try:
        for table in (PACKAGES, PROJECTS, FOLDERS):
            _run(session, f"DELETE FROM SSISDB.{table}")
        now = engine.now()
        for folder_id, (folder, projects) in enumerate(catalog_tree(packages).items(), start=1):
            _run(
                session,
                f"INSERT INTO SSISDB.{FOLDERS} (id, name, created_by_sid, created_by_name, created_time) "
                "VALUES (@id, @name, @sid, @owner, @now)",
                id=folder_id,
                name=folder,
                sid=SA_SID,
                owner=OWNER,
                now=now,
            )
            for project, names in projects.items():
                (last,) = _run(session, f"SELECT MAX(project_id) FROM SSISDB.{PROJECTS}")[0]
                project_id = (last or 0) + 1
                _run(
                    session,
                    f"INSERT INTO SSISDB.{PROJECTS} (project_id, folder_id, name, deployed_by_sid, deployed_by_name, "
                    "last_deployed_time, created_time, object_version_lsn) "
                    "VALUES (@id, @folder, @name, @sid, @owner, @now, @now, @id)",
                    id=project_id,
                    folder=folder_id,
                    name=project,
                    sid=SA_SID,
                    owner=OWNER,
                    now=now,
                )
                for name in names:
                    count += 1
                    path = f"\\SSISDB\\{folder}\\{project}\\{name}".lower()
                    _run(
                        session,
                        f"INSERT INTO SSISDB.{PACKAGES} (package_id, name, package_guid, project_id, entry_point) "
                        "VALUES (@id, @name, @guid, @project, 1)",
                        id=count,
                        name=name,
                        guid=uuid.uuid5(_GUIDS, path),
                        project=project_id,
                    )
    finally:
        session.close()
    return count
