"""Encrypted connections through every client stack, against servers with encryption "optional",
"required" and "strict" ([MS-TDS] 2.2.6.5, 3.3.5.2; TDS 8.0).

``CONNECTIONPROPERTY('encrypt_option')`` tells a session-encrypted connection; a recording relay
between client and server tells whether the login (the user name in LOGIN7) crossed the wire in clear.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pytest

from sqlagent_emulator.testing import EmulatorController
from tests.clients import freetds_connection_string, odbc18_connection_string
from tests.conftest import SA_PASSWORD, emulator_config

SERVERS = {"OPTIONAL": "optional", "REQUIRED": "required", "STRICT": "strict"}
LOGIN_TIMEOUT = 4
USER = "sa"
USER_IN_LOGIN7 = USER.encode("utf-16-le")
FAST = 2.0  # seconds: a refused connection must fail well inside the login timeout


@pytest.fixture(scope="module")
def servers() -> Iterator[EmulatorController]:
    configs = [emulator_config(name, encryption=mode) for name, mode in SERVERS.items()]
    with EmulatorController(configs) as controller:
        yield controller


class Relay:
    """A TCP relay to one server that records what the client sent."""

    def __init__(self, port: int) -> None:
        self.sent = bytearray()
        self._target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        with source, sink, contextlib.suppress(OSError):
            while data := _recv(source):
                if record:
                    self.sent += data
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@pytest.fixture
def relay(servers: EmulatorController) -> Iterator[Callable[[str], Relay]]:
    made: list[Relay] = []

    def make(name: str) -> Relay:
        made.append(Relay(servers[name].port))
        return made[-1]

    yield make
    for r in made:
        r.close()


def encrypt_option(conn: Any) -> str:
    cursor = conn.cursor()
    cursor.execute("SELECT CONNECTIONPROPERTY('encrypt_option') AS encrypt_option, SUSER_SNAME() AS login")
    value, login = cursor.fetchone()
    assert login == USER
    return value


def odbc18(port: int, **attributes: str) -> Any:
    """Without trusting the server's certificate unless ``attributes`` say so."""
    import pyodbc

    cs = odbc18_connection_string(
        "127.0.0.1", port, USER, SA_PASSWORD, **{"TrustServerCertificate": "no", **attributes}
    )
    return pyodbc.connect(cs, timeout=LOGIN_TIMEOUT, autocommit=True)


def freetds(port: int, encryption: str) -> Any:
    import pyodbc

    cs = freetds_connection_string("127.0.0.1", port, USER, SA_PASSWORD, Encryption=encryption)
    return pyodbc.connect(cs, timeout=LOGIN_TIMEOUT, autocommit=True)


def pymssql(port: int, encryption: str) -> Any:
    import pymssql as _pymssql

    return _pymssql.connect(
        server="127.0.0.1",
        port=str(port),
        user=USER,
        password=SA_PASSWORD,
        tds_version="7.4",
        login_timeout=LOGIN_TIMEOUT,
        encryption=encryption,
    )


def pytds(port: int, cafile: str | None) -> Any:
    import pytds as _pytds

    # dsn "localhost": python-tds 1.17 checks the host against the certificate's CN first; its SAN
    # check calls X509.get_extension, which pyOpenSSL 25+ no longer has.
    return _pytds.connect(
        dsn="localhost", port=port, user=USER, password=SA_PASSWORD, cafile=cafile, login_timeout=LOGIN_TIMEOUT
    )


def refused(connect: Callable[[], Any]) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        connect().close()
    return caught.value, time.monotonic() - started


# --- Microsoft ODBC Driver 18 ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["OPTIONAL", "REQUIRED"])
def test_odbc18_encrypt_yes_trusting_the_server_certificate(servers: EmulatorController, name: str) -> None:
    with closing(odbc18(servers[name].port, Encrypt="yes", TrustServerCertificate="yes")) as conn:
        assert encrypt_option(conn) == "TRUE"


def test_odbc18_encrypt_yes_trusting_the_ca_file(servers: EmulatorController, monkeypatch: pytest.MonkeyPatch) -> None:
    """ODBC 18 on Linux verifies through OpenSSL's default store, which SSL_CERT_FILE replaces."""
    monkeypatch.setenv("SSL_CERT_FILE", servers.ca_path("REQUIRED") or "")
    with closing(odbc18(servers["REQUIRED"].port, Encrypt="yes")) as conn:
        assert encrypt_option(conn) == "TRUE"


@pytest.mark.parametrize("name", ["OPTIONAL", "STRICT"])
def test_odbc18_strict_with_the_certificate_pinned(servers: EmulatorController, name: str) -> None:
    cert = servers.cert_path(name)
    with closing(odbc18(servers[name].port, Encrypt="strict", ServerCertificate=cert)) as conn:
        assert encrypt_option(conn) == "TRUE"


def test_odbc18_pins_a_certificate_only_in_strict_mode(servers: EmulatorController) -> None:
    """With Encrypt=yes, ODBC 18.6 ignores ServerCertificate and verifies the chain as usual."""
    port, cert = servers["REQUIRED"].port, servers.cert_path("REQUIRED")
    error, _ = refused(lambda: odbc18(port, Encrypt="yes", ServerCertificate=cert))
    assert "certificate verify failed" in str(error)


@pytest.mark.parametrize(
    ("name", "attributes"),
    [
        ("OPTIONAL", {"Encrypt": "yes"}),
        ("REQUIRED", {"Encrypt": "no"}),  # the server forces encryption, and ODBC 18 then verifies
        ("STRICT", {"Encrypt": "strict"}),
        ("STRICT", {"Encrypt": "strict", "TrustServerCertificate": "yes"}),  # strict always verifies
    ],
)
def test_odbc18_without_trust_is_refused_at_once_with_a_certificate_error(
    servers: EmulatorController, name: str, attributes: dict[str, str]
) -> None:
    error, seconds = refused(lambda: odbc18(servers[name].port, **attributes))
    assert "SSL Provider" in str(error) and "certificate verify failed" in str(error)
    assert error.args[0] == "08001"
    assert seconds < FAST


def test_odbc18_login_only_encryption_with_encrypt_no(servers: EmulatorController, relay: Callable) -> None:
    proxy = relay("OPTIONAL")
    with closing(odbc18(proxy.port, Encrypt="no")) as conn:
        assert encrypt_option(conn) == "FALSE"  # the session runs in clear ...
        conn.cursor().execute("SELECT 'after login' AS marker").fetchone()
    assert USER_IN_LOGIN7 not in proxy.sent  # ... but the login went through TLS
    assert "after login".encode("utf-16-le") in proxy.sent


def test_odbc18_encrypt_no_is_refused_by_a_strict_server(servers: EmulatorController) -> None:
    error, seconds = refused(lambda: odbc18(servers["STRICT"].port, Encrypt="no"))
    assert "handshakes before login" in str(error)
    assert seconds < FAST


def test_odbc18_login_timeout_does_not_cover_the_strict_tls_handshake() -> None:
    """The hang this replaced: ODBC 18's login timeout does not cover the TLS handshake, so a peer
    that reads the ClientHello and answers nothing holds the client until it closes the socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def swallow() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        time.sleep(LOGIN_TIMEOUT + 2)  # silence, longer than the login timeout
        conn.close()

    thread = threading.Thread(target=swallow, daemon=True)
    thread.start()
    error, seconds = refused(lambda: odbc18(port, Encrypt="strict"))
    listener.close()
    assert seconds > LOGIN_TIMEOUT + 1, f"the driver now honours the login timeout ({seconds:.1f} s): simplify"
    assert error.args[0] == "08001"


# --- FreeTDS (ODBC and pymssql) -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["OPTIONAL", "REQUIRED"])
def test_freetds_odbc_with_encryption_required(servers: EmulatorController, name: str, relay: Callable) -> None:
    proxy = relay(name)
    with closing(freetds(proxy.port, "require")) as conn:
        assert encrypt_option(conn) == "TRUE"
    assert USER_IN_LOGIN7 not in proxy.sent and b"CONNECTIONPROPERTY" not in proxy.sent


@pytest.mark.parametrize("name", ["OPTIONAL", "REQUIRED"])
def test_pymssql_with_encryption_required(servers: EmulatorController, name: str) -> None:
    with closing(pymssql(servers[name].port, "require")) as conn:
        assert encrypt_option(conn) == "TRUE"


def test_freetds_default_encrypts_the_login_only(servers: EmulatorController, relay: Callable) -> None:
    proxy = relay("OPTIONAL")
    with closing(pymssql(proxy.port, "request")) as conn:
        assert encrypt_option(conn) == "FALSE"
    assert USER_IN_LOGIN7 not in proxy.sent


@pytest.mark.parametrize("connect", [lambda port: freetds(port, "off"), lambda port: pymssql(port, "off")])
def test_freetds_without_encryption_is_refused_by_a_forcing_server(servers: EmulatorController, connect) -> None:
    error, seconds = refused(lambda: connect(servers["REQUIRED"].port))
    assert seconds < FAST
    assert "connect" in str(error).lower()


# --- python-tds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["OPTIONAL", "REQUIRED"])
def test_pytds_with_a_ca_file(servers: EmulatorController, name: str) -> None:
    with closing(pytds(servers[name].port, servers.ca_path(name))) as conn:
        assert encrypt_option(conn) == "TRUE"


def test_pytds_without_a_ca_file_logs_in_in_clear(servers: EmulatorController, relay: Callable) -> None:
    proxy = relay("OPTIONAL")
    with closing(pytds(proxy.port, None)) as conn:
        assert encrypt_option(conn) == "FALSE"
    assert USER_IN_LOGIN7 in proxy.sent  # ENCRYPT_NOT_SUP: nothing is encrypted


def test_pytds_without_a_ca_file_is_refused_by_a_forcing_server(servers: EmulatorController) -> None:
    error, seconds = refused(lambda: pytds(servers["REQUIRED"].port, None))
    assert "encryption" in str(error) and "required by server" in str(error)
    assert seconds < FAST
