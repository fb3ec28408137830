"""Packages outside the SSIS catalog (the package deployment model): the msdb package store and package files.

- The msdb package store is two msdb tables, ``dbo.sysssispackagefolders`` (folders nested by
  ``parentfolderid``; the root folder has the empty GUID, no parent and an empty name) and
  ``dbo.sysssispackages`` (a package's ``name`` and ``folderid``), with Microsoft's columns:
  https://learn.microsoft.com/en-us/sql/relational-databases/system-tables/dbo-sysssispackages-transact-sql and
  .../dbo-sysssispackagefolders-transact-sql. A server's configured ``[[servers.msdb_packages]]`` become their
  rows at every start (as the catalog's ``[[packages]]`` do). ``dtexec /SQL "\\Folder\\Package"`` looks the
  package up there (``find_msdb_package``).
- Package files: the server's ``[[servers.package_files]]`` list the ``.dtsx`` files its file system holds
  (``dtexec /FILE``), a test device: T-SQL cannot list files on SQL Server either.

Paths compare case-insensitively (msdb's default collation; Windows file names).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..sql.engine import Login
from ..sql.results import TypedValue
from ..sql.sqltypes import type_of_python
from .logins import SA_SID
from .model import PackageSpec

if TYPE_CHECKING:
    from ..sql.engine import Engine, SqlSession

ROOT_FOLDER = uuid.UUID(int=0)
_IDS = uuid.UUID("6c1d2f0e-2b7a-4f51-9d3c-1e5f7a9b0c42")  # stable ids per path


def _run(session: SqlSession, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    typed = {f"@{k}": TypedValue(v, type_of_python(v)) for k, v in params.items()}
    sets = [rs for r in session.run_internal(sql, typed) for rs in r.result_sets]
    return sets[-1].rows if sets else []


def split_msdb_path(path: str) -> tuple[list[str], str]:
    """``\\A\\B\\Pkg`` -> (["A", "B"], "Pkg"); ValueError when it is not that form."""
    parts = path.split("\\")
    if len(parts) < 2 or parts[0] != "" or not all(p.strip() for p in parts[1:]):
        raise ValueError(f"an msdb package path must look like \\<folder>\\<package>, got {path!r}")
    return parts[1:-1], parts[-1]


def _session(engine: Engine) -> SqlSession:
    return engine.open_session(Login("sa", "", frozenset({"sysadmin"})), 0, "msdb")


def publish_msdb_packages(engine: Engine, packages: Iterable[PackageSpec]) -> int:
    """Make the msdb package store hold exactly the configured packages (and the root folder)."""
    session = _session(engine)
    count = 0
    try:
        _run(session, "DELETE FROM msdb.dbo.sysssispackages")
        _run(session, "DELETE FROM msdb.dbo.sysssispackagefolders")
        _run(
            session,
            "INSERT INTO msdb.dbo.sysssispackagefolders (folderid, parentfolderid, foldername) "
            "VALUES (@id, NULL, @name)",
            id=ROOT_FOLDER,
            name="",
        )
        folders: dict[str, uuid.UUID] = {"": ROOT_FOLDER}
        for spec in packages:
            names, package = split_msdb_path(spec.path)
            parent, key = ROOT_FOLDER, ""
            for name in names:
                key = f"{key}\\{name.lower()}"
                if key not in folders:
                    folders[key] = uuid.uuid5(_IDS, key)
                    _run(
                        session,
                        "INSERT INTO msdb.dbo.sysssispackagefolders (folderid, parentfolderid, foldername) "
                        "VALUES (@id, @parent, @name)",
                        id=folders[key],
                        parent=parent,
                        name=name,
                    )
                parent = folders[key]
            count += 1
            _run(
                session,
                "INSERT INTO msdb.dbo.sysssispackages (name, id, description, createdate, folderid, ownersid, "
                "packageformat, packagetype, vermajor, verminor, verbuild, verid, isencrypted) "
                "VALUES (@name, @id, NULL, @now, @folder, @owner, 1, 0, 1, 0, 1, @id, 0)",
                name=package,
                id=uuid.uuid5(_IDS, spec.path.lower()),
                now=engine.now(),
                folder=parent,
                owner=SA_SID,
            )
    finally:
        session.close()
    return count


def find_msdb_package(engine: Engine, path: str) -> bool:
    """Whether the msdb package store holds ``\\Folder\\...\\Package`` (read from its tables)."""
    try:
        names, package = split_msdb_path(path)
    except ValueError:
        return False
    session = _session(engine)
    try:
        folder: Any = ROOT_FOLDER
        for name in names:
            rows = _run(
                session,
                "SELECT folderid FROM msdb.dbo.sysssispackagefolders WHERE parentfolderid = @parent "
                "AND LOWER(foldername) = LOWER(@name)",
                parent=folder,
                name=name,
            )
            if not rows:
                return False
            folder = rows[0][0]
        rows = _run(
            session,
            "SELECT COUNT(*) FROM msdb.dbo.sysssispackages WHERE folderid = @folder AND LOWER(name) = LOWER(@name)",
            folder=folder,
            name=package,
        )
        return bool(rows and rows[0][0])
    finally:
        session.close()
