"""The client stacks in tests/clients.py: drivers load, and errors map to SQL Server numbers.

No server is needed: connecting to a closed port must fail with a *connection* error, which proves
the driver library itself loaded (a missing or broken driver fails differently, e.g. unixODBC's
01000 "Can't open lib" or IM004).
"""

from __future__ import annotations

import os
import socket

import pytest

from tests import clients

# SQLSTATEs that mean "the driver ran and could not reach the server".
CONNECT_FAILURE_STATES = {"08001", "08S01", "HYT00"}


@pytest.fixture(scope="module")
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stacks_listed():
    assert clients.STACKS == ("odbc18", "freetds", "pymssql", "pytds")


def test_odbc18_driver_path_is_the_bundled_library():
    path = clients.odbc18_driver_path()
    assert os.path.isabs(path) and os.path.isfile(path)
    assert os.path.basename(path).startswith("libmsodbcsql-18.")
    # Next to it: libodbcinst (found via RUNPATH $ORIGIN) and the message resources.
    lib_dir = os.path.dirname(path)
    assert os.path.isfile(os.path.join(lib_dir, "..", "share", "resources", "en_US", "msodbcsqlr18.rll"))


@pytest.mark.parametrize("stack", ["odbc18", "freetds"])
def test_odbc_driver_loads(stack, closed_port):
    import pyodbc

    with pytest.raises(pyodbc.Error) as info:
        clients.connect(stack, "127.0.0.1", closed_port, "sa", "x", login_timeout=2)
    assert info.value.args[0] in CONNECT_FAILURE_STATES, info.value.args


def test_pymssql_reaches_the_network(closed_port):
    import pymssql

    with pytest.raises(pymssql.OperationalError) as info:
        clients.connect("pymssql", "127.0.0.1", closed_port, "sa", "x", login_timeout=2)
    # DB-Library keeps the previous connection's last message number around, so check the text.
    assert "Unable to connect" in str(info.value) or "unavailable" in str(info.value)


def test_pytds_reaches_the_network(closed_port):
    import pytds

    # python-tds retries a refused connection until login_timeout, then raises TimeoutError.
    with pytest.raises((OSError, pytds.Error)):
        clients.connect("pytds", "127.0.0.1", closed_port, "sa", "x", login_timeout=1)


def test_unknown_stack():
    with pytest.raises(ValueError, match="unknown client stack"):
        clients.connect("jdbc", "127.0.0.1", 1, "sa", "x")


def test_odbc_connection_strings_quote_special_values():
    cs = clients.freetds_connection_string("127.0.0.1", 1433, "sa", "p;w}d", database="msdb")
    assert "PWD={p;w}}d};" in cs and "Port=1433;" in cs and "TDS_Version=7.4;" in cs
    assert "DATABASE=msdb;" in cs
    cs = clients.odbc18_connection_string("127.0.0.1", 1433, "sa", "Pa55!word")
    assert "SERVER=127.0.0.1,1433;" in cs and "Encrypt=no;" in cs and "PWD=Pa55!word;" in cs


# --- error_number, with exceptions shaped exactly as each stack raises them -----------------------
def test_error_number_pyodbc():
    import pyodbc

    for vendor in ("[Microsoft][ODBC Driver 18 for SQL Server]", "[FreeTDS]"):
        exc = pyodbc.ProgrammingError(
            "42000", f"[42000] {vendor}[SQL Server]The job (nightly) does not exist. (22022) (SQLExecDirectW)"
        )
        assert clients.error_number(exc) == 22022
    two = pyodbc.ProgrammingError(
        "42000", "[42000] [FreeTDS][SQL Server]first (208) (SQLExecDirectW); [42000] second (102)"
    )
    assert clients.error_number(two) == 208
    login_timeout = pyodbc.OperationalError(
        "HYT00",
        "[HYT00] [Microsoft][ODBC Driver 18 for SQL Server]Login timeout expired (0) (SQLDriverConnect)",
    )
    assert clients.error_number(login_timeout) is None


def test_error_number_pymssql():
    import pymssql

    exc = pymssql.OperationalError(22022, b"The job does not exist.DB-Lib error message 20018, severity 16")
    assert clients.error_number(exc) == 22022
    nested = pymssql.OperationalError((20009, b"DB-Lib error message 20009, severity 9: Unable to connect"))
    assert clients.error_number(nested) == 20009


def test_error_number_pytds():
    import pytds

    exc = pytds.OperationalError("The job does not exist.")
    exc.msg_no = 22022
    assert clients.error_number(exc) == 22022
    assert clients.error_number(pytds.OperationalError("no number")) is None


def test_error_number_other():
    assert clients.error_number(ValueError("x")) is None
