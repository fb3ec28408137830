"""The TLS recipes of docs/connections.md, each as an Airflow connection (from the environment, as
Airflow reads them) used by SqlAgentHook against emulated servers with encryption "required" and
"strict"; the emulator's CA and certificate stand in for a real server's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ssis_lb.exceptions import TlsConnectionError, TransientConnectionError
from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from sqlagent_emulator.testing import EmulatorController
from tests.clients import odbc18_driver_path
from tests.conftest import OPERATOR_PASSWORD, emulator_config

HOST = "localhost"  # the name in the certificate


@pytest.fixture(scope="module")
def servers() -> Iterator[EmulatorController]:
    configs = [emulator_config("TLSREQ", encryption="required"), emulator_config("TLSSTRICT", encryption="strict")]
    with EmulatorController(configs) as controller:
        yield controller


def odbc(server: str, servers: EmulatorController, **extra: Any) -> dict[str, Any]:
    return {
        "conn_type": "odbc",
        "host": f"{HOST},{servers[server].port}",
        "login": "agent_operator",
        "password": OPERATOR_PASSWORD,
        "schema": "msdb",
        "extra": {"driver": odbc18_driver_path(), "connect_kwargs": {"timeout": 5}, **extra},
    }


def mssql(server: str, servers: EmulatorController, **extra: Any) -> dict[str, Any]:
    return {
        "conn_type": "mssql",
        "host": HOST,
        "port": servers[server].port,
        "login": "agent_operator",
        "password": OPERATOR_PASSWORD,
        "schema": "msdb",
        "extra": {"tds_version": "7.4", "login_timeout": 5, **extra},
    }


def clock(connection: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_TLS_RECIPE", json.dumps(connection))
    server, _now = SqlAgentHook("tls_recipe").server_clock()
    return server


def test_odbc18_encrypt_yes_trusting_the_ca(servers, monkeypatch, airflow_db) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", servers.ca_path("TLSREQ"))
    assert clock(odbc("TLSREQ", servers, Encrypt="yes"), monkeypatch) == "TLSREQ"


def test_odbc18_strict_with_the_certificate_pinned(servers, monkeypatch, airflow_db) -> None:
    connection = odbc("TLSSTRICT", servers, Encrypt="strict", ServerCertificate=servers.cert_path("TLSSTRICT"))
    assert clock(connection, monkeypatch) == "TLSSTRICT"


def test_odbc18_strict_trusting_the_ca(servers, monkeypatch, airflow_db) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", servers.ca_path("TLSSTRICT"))
    assert clock(odbc("TLSSTRICT", servers, Encrypt="strict"), monkeypatch) == "TLSSTRICT"


def test_odbc18_trust_server_certificate_for_tests(servers, monkeypatch, airflow_db) -> None:
    connection = odbc("TLSREQ", servers, Encrypt="yes", TrustServerCertificate="yes")
    assert clock(connection, monkeypatch) == "TLSREQ"


def test_odbc18_untrusted_certificate_is_a_tls_error_naming_the_server_and_the_fix(
    servers, monkeypatch, airflow_db
) -> None:
    with pytest.raises(TlsConnectionError) as caught:
        clock(odbc("TLSREQ", servers, Encrypt="yes"), monkeypatch)
    message = str(caught.value)
    assert message.startswith(
        f"SQL Server Agent server '{HOST},{servers['TLSREQ'].port}' (conn_id 'tls_recipe'): the encrypted connection"
    )
    assert "certificate verify failed" in message and "ServerCertificate=" in message
    assert not isinstance(caught.value, TransientConnectionError)


def test_pymssql_encryption_require(servers, monkeypatch, airflow_db) -> None:
    assert clock(mssql("TLSREQ", servers, encryption="require"), monkeypatch) == "TLSREQ"


def test_pymssql_verifying_the_certificate_through_freetds_conf(
    servers, monkeypatch, airflow_db, tmp_path: Path
) -> None:
    conf = tmp_path / "freetds.conf"
    conf.write_text(f"[global]\n\tca file = {servers.ca_path('TLSREQ')}\n")
    monkeypatch.setenv("FREETDSCONF", str(conf))
    assert clock(mssql("TLSREQ", servers, encryption="require"), monkeypatch) == "TLSREQ"
    # The server certificate itself is no trust anchor (its issuer is missing): refused, as FreeTDS
    # reports an unreachable server.
    conf.write_text(f"[global]\n\tca file = {servers.cert_path('TLSREQ')}\n")
    with pytest.raises(TransientConnectionError, match="TDS server connection failed"):
        clock(mssql("TLSREQ", servers, encryption="require"), monkeypatch)
