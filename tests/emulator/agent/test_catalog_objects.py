"""SSISDB's catalog.folders, catalog.projects and catalog.packages: built from the configured packages,
shown only to ssis_admin and sysadmin (no READ grants are emulated), rebuilt when the configuration changes."""

from __future__ import annotations

import pytest

from sqlagent_emulator.agent.catalogobjects import publish_packages
from sqlagent_emulator.agent.model import PackageSpec
from sqlagent_emulator.sql.engine import Engine

from .conftest import Server

PACKAGES = (
    PackageSpec("\\SSISDB\\ETL\\Warehouse\\LoadOrders.dtsx"),
    PackageSpec("\\SSISDB\\ETL\\Warehouse\\LoadCustomers.dtsx"),
    PackageSpec("\\SSISDB\\etl\\warehouse\\loadorders.dtsx"),  # the same package in another case
    PackageSpec("\\SSISDB\\ETL\\Finance\\Close.dtsx"),
    PackageSpec("\\SSISDB\\Archive\\Logs\\Purge.dtsx"),
)
PATHS = (
    "SELECT f.name, pr.name, pk.name FROM SSISDB.catalog.packages AS pk "
    "JOIN SSISDB.catalog.projects AS pr ON pr.project_id = pk.project_id "
    "JOIN SSISDB.catalog.folders AS f ON f.id = pr.folder_id ORDER BY pk.package_id"
)


def test_configured_packages_become_folders_projects_and_packages(engine: Engine, server: Server) -> None:
    assert publish_packages(engine, PACKAGES) == 4
    assert server.rows(PATHS) == [
        ("ETL", "Warehouse", "LoadOrders.dtsx"),
        ("ETL", "Warehouse", "LoadCustomers.dtsx"),
        ("ETL", "Finance", "Close.dtsx"),
        ("Archive", "Logs", "Purge.dtsx"),
    ]
    assert server.rows("SELECT id, name, created_by_name FROM SSISDB.catalog.folders ORDER BY id") == [
        (1, "ETL", "dbo"),
        (2, "Archive", "dbo"),
    ]
    projects = server.rows("SELECT folder_id, name FROM SSISDB.catalog.projects ORDER BY project_id")
    assert projects == [(1, "Warehouse"), (1, "Finance"), (2, "Logs")]
    guids = server.rows("SELECT package_guid, entry_point FROM SSISDB.catalog.packages")
    assert len({g for g, _ in guids}) == 4 and {e for _, e in guids} == {True}


@pytest.mark.parametrize(
    ("login", "sees"),
    [("sa", True), ("ssisadm", True), ("logrdr", False), ("op", False), ("nobody", False)],
)
def test_only_ssis_admin_and_sysadmin_see_the_catalog_objects(
    engine: Engine, server: Server, login: str, sees: bool
) -> None:
    publish_packages(engine, PACKAGES)
    for view in ("folders", "projects", "packages"):
        count = server.rows(f"SELECT COUNT(*) FROM SSISDB.catalog.{view}", as_login=login)[0][0]
        assert (count > 0) is sees, view  # rows left out, no error


def test_publishing_again_follows_the_configuration(engine: Engine, server: Server) -> None:
    publish_packages(engine, PACKAGES)
    publish_packages(engine, PACKAGES[3:4])
    assert server.rows(PATHS) == [("ETL", "Finance", "Close.dtsx")]
    publish_packages(engine, ())
    assert server.rows("SELECT COUNT(*) FROM SSISDB.catalog.folders") == [(0,)]
