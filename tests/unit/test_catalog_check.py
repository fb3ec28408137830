"""The catalog check of a deploy: missing paths, the nearest existing one (difflib), and when a login's
partial view of SSISDB turns a failure into a warning."""

from __future__ import annotations

import pytest

from airflow_provider_ssis_lb.catalog_check import MissingPackage, closest_path, missing_packages, path_key
from airflow_provider_ssis_lb.deploy import ServerResult, check_catalog, format_results
from airflow_provider_ssis_lb.hooks.sql_agent import CatalogListing
from airflow_provider_ssis_lb.manifest import parse_manifest

CATALOG = (
    "\\SSISDB\\ETL\\Warehouse\\LoadOrders.dtsx",
    "\\SSISDB\\ETL\\Warehouse\\LoadCustomers.dtsx",
    "\\SSISDB\\ETL\\Finance\\CloseMonth.dtsx",
)
MANIFEST = parse_manifest(
    """\
servers: [{conn_id: node1}]
children:
  - name: Orders
    catalog_path: \\ssisdb\\etl\\WAREHOUSE\\loadorders.dtsx
  - name: Typo
    catalog_path: \\SSISDB\\ETL\\Warehouse\\LoadOrdrs.dtsx
  - name: Moved
    catalog_path: \\SSISDB\\ETL\\Sales\\CloseMonth.dtsx
  - name: Unknown
    catalog_path: \\SSISDB\\ETL\\Warehouse\\Quick.dtsx
""",
    "m.yaml",
)


def test_path_key_ignores_case_and_the_root() -> None:
    assert (
        path_key("\\SSISDB\\ETL\\W\\A.dtsx") == path_key("\\ssisdb\\etl\\w\\a.DTSX") == ("ssisdb", "etl", "w", "a.dtsx")
    )


@pytest.mark.parametrize(
    ("path", "closest"),
    [
        pytest.param("\\SSISDB\\ETL\\Warehouse\\LoadOrdrs.dtsx", CATALOG[0], id="typo-in-the-package"),
        pytest.param("\\SSISDB\\ETL\\Warehouse\\LoadCustomer.dtsx", CATALOG[1], id="near-two-picks-the-nearer"),
        pytest.param("\\SSISDB\\ETL\\Sales\\CloseMonth.dtsx", CATALOG[2], id="wrong-project"),
        pytest.param("\\SSISDB\\ETL\\Warehouse\\Quick.dtsx", None, id="nothing-near"),
        pytest.param("\\SSISDB\\ETL\\Warehouse\\Slow.dtsx", None, id="the-dtsx-suffix-does-not-count"),
    ],
)
def test_closest_path(path: str, closest: str | None) -> None:
    assert closest_path(path, CATALOG) == closest


def test_missing_packages_names_each_child() -> None:
    assert missing_packages(MANIFEST.children, CATALOG) == [
        MissingPackage("Typo", "\\SSISDB\\ETL\\Warehouse\\LoadOrdrs.dtsx", CATALOG[0]),
        MissingPackage("Moved", "\\SSISDB\\ETL\\Sales\\CloseMonth.dtsx", CATALOG[2]),
        MissingPackage("Unknown", "\\SSISDB\\ETL\\Warehouse\\Quick.dtsx", None),
    ]


def test_a_complete_listing_fails_the_server_with_one_line_per_child() -> None:
    result = ServerResult("node1", "SQL01")
    check_catalog(result, MANIFEST.children, CatalogListing(CATALOG, complete=True))
    assert result.failed and result.warnings == []
    assert result.missing_messages()[0] == (
        "child 'Typo': catalog_path '\\SSISDB\\ETL\\Warehouse\\LoadOrdrs.dtsx' is not in the SSIS catalog of server "
        "'SQL01' (conn_id 'node1'); did you mean '\\SSISDB\\ETL\\Warehouse\\LoadOrders.dtsx'?"
    )
    assert result.missing_messages()[2].endswith("; deploy its project there or fix catalog_path")
    report = format_results([result], dry_run=False)
    assert report.splitlines()[0] == (
        "node1 (SQL01): ERROR: 3 catalog path(s) not in its SSIS catalog; no job was created or changed there"
    )
    assert format_results([result], dry_run=True).splitlines()[1] == (
        "node1 (SQL01): ERROR: 3 catalog path(s) not in its SSIS catalog; a deploy would change no job there"
    )


def test_an_incomplete_or_unreadable_listing_only_warns() -> None:
    not_seen = ", ".join(  # sorted, each once
        (
            "\\SSISDB\\ETL\\Sales\\CloseMonth.dtsx",
            "\\SSISDB\\ETL\\Warehouse\\LoadOrdrs.dtsx",
            "\\SSISDB\\ETL\\Warehouse\\Quick.dtsx",
        )
    )
    partial = ServerResult("node1", "SQL01")
    check_catalog(partial, MANIFEST.children, CatalogListing(CATALOG[:1], complete=False))
    assert not partial.failed and partial.missing == []
    assert partial.warnings == [
        "WARNING: catalog paths not checked on server 'SQL01' (conn_id 'node1'): the login is not sysadmin, and SSISDB "
        f"shows it only the projects it may read; not seen: {not_seen}. Deploy with a sysadmin login (deploy_conn_id) "
        "to check them"
    ]
    assert f"node1 (SQL01): 0 created, 0 updated, 0 unchanged\n  {partial.warnings[0]}" == format_results(
        [partial], dry_run=False
    )

    refused = ServerResult("node1", "SQL01")
    check_catalog(refused, MANIFEST.children[:1], CatalogListing((), False, "SSISDB refused this login (error 916)"))
    assert not refused.failed
    assert refused.warnings == [
        "WARNING: catalog paths not checked on server 'SQL01' (conn_id 'node1'): "
        "SSISDB refused this login (error 916); not seen: \\ssisdb\\etl\\WAREHOUSE\\loadorders.dtsx. "
        "Deploy with a sysadmin login (deploy_conn_id) to check them"
    ]


def test_nothing_missing_is_silent_even_for_a_partial_view() -> None:
    result = ServerResult("node1", "SQL01")
    check_catalog(result, MANIFEST.children[:1], CatalogListing(CATALOG[:1], complete=False))
    assert result.missing == [] and result.warnings == [] and not result.failed
