"""The four client stacks the emulator must satisfy, each as one function returning an open DB-API
connection.

=========  ===================================================================================
stack      what it is
=========  ===================================================================================
odbc18     pyodbc + Microsoft ODBC Driver 18 from the PyPI wheel ``mssql-python-odbc``, loaded by
           path (no odbcinst.ini registration needed)
freetds    pyodbc + FreeTDS ODBC driver (Debian ``tdsodbc``)
pymssql    pymssql with its bundled FreeTDS (DB-Library)
pytds      python-tds (pure Python)
=========  ===================================================================================

With these defaults the emulator (an "optional" server) encrypts the login only (ODBC 18
``Encrypt=no``, FreeTDS's ``encryption=request``) or nothing (python-tds without ``cafile``);
tests/emulator/test_tls_clients.py covers encrypted sessions.
"""

from __future__ import annotations

import functools
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

STACKS = ("odbc18", "freetds", "pymssql", "pytds")

DEFAULT_LOGIN_TIMEOUT = 10  # seconds


# --- driver look-up -------------------------------------------------------------------------------
def _linux_distro_family() -> str | None:
    """Map /etc/os-release to the directory names mssql-python-odbc uses."""
    ids: list[str] = []
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.strip().partition("=")
                if key in ("ID", "ID_LIKE"):
                    ids.extend(value.strip('"').lower().split())
    except OSError:
        return None
    for ident in ids:
        if ident in ("debian", "ubuntu"):
            return "debian_ubuntu"
        if ident in ("rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn"):
            return "rhel"
        if ident in ("suse", "sles", "opensuse", "opensuse-leap", "opensuse-tumbleweed"):
            return "suse"
        if ident == "alpine":
            return "alpine"
    return None


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", os.path.basename(path)))


@functools.cache
def odbc18_driver_path() -> str:
    """Absolute path of the Microsoft ODBC Driver 18 shared library, for ``DRIVER={<path>}``.

    Order: ``$MSODBCSQL18_DRIVER`` if set; the driver inside the installed ``mssql_python_odbc``
    package for this distro family and CPU (falling back to any glibc build for this CPU);
    a system install under ``/opt/microsoft/msodbcsql18``.

    The library finds its message resources at ``../share/resources/en_US/msodbcsqlr18.rll``
    relative to itself and its ``libodbcinst.so.2`` through RUNPATH ``$ORIGIN``, so it must be
    used in place (not copied elsewhere) and needs no ``ODBCSYSINI`` or odbcinst.ini entry.
    """
    override = os.environ.get("MSODBCSQL18_DRIVER")
    if override:
        if not os.path.isfile(override):
            raise FileNotFoundError(f"MSODBCSQL18_DRIVER={override} does not exist")
        return override

    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    candidates: list[str] = []
    try:
        import mssql_python_odbc

        libs = mssql_python_odbc.get_libs_dir()
    except ImportError:
        libs = None
    if libs and platform.system() == "Linux":
        family = _linux_distro_family()
        pattern = "libmsodbcsql-18.*.so.*"
        if family:
            candidates += glob.glob(os.path.join(libs, "linux", family, arch, "lib", pattern))
        if not candidates and family != "alpine":
            # Unknown glibc distro: any glibc build for this CPU; Debian's first (oldest glibc).
            for fam in ("debian_ubuntu", "rhel", "suse"):
                candidates += glob.glob(os.path.join(libs, "linux", fam, arch, "lib", pattern))
                if candidates:
                    break
    if not candidates:
        candidates = glob.glob("/opt/microsoft/msodbcsql18/lib64/libmsodbcsql-18.*.so.*")
    if not candidates:
        raise FileNotFoundError(
            "Microsoft ODBC Driver 18 not found: install the 'mssql-python-odbc' wheel "
            "(pip install -e '.[test]') or msodbcsql18, or set MSODBCSQL18_DRIVER"
        )
    return max(candidates, key=_version_key)


@functools.cache
def freetds_driver() -> str:
    """Value for ``DRIVER=`` (without braces) selecting the FreeTDS ODBC driver.

    ``FreeTDS`` when registered in odbcinst.ini (Debian's ``tdsodbc`` registers it unless debconf
    said no), else the absolute path of ``libtdsodbc.so``.
    """
    if "FreeTDS" in _registered_odbc_drivers():
        return "FreeTDS"
    patterns = (
        "/usr/lib/*/odbc/libtdsodbc.so*",
        "/usr/lib/odbc/libtdsodbc.so*",
        "/usr/lib64/libtdsodbc.so*",
        "/usr/lib/libtdsodbc.so*",
        "/usr/local/lib/libtdsodbc.so*",
        "/usr/lib/*/libtdsodbc.so*",
    )
    for pattern in patterns:
        found = sorted(glob.glob(pattern), key=len)
        if found:
            return found[0]
    raise FileNotFoundError("FreeTDS ODBC driver (libtdsodbc.so) not found: apt-get install tdsodbc")


def _registered_odbc_drivers() -> list[str]:
    try:
        import pyodbc

        return list(pyodbc.drivers())
    except Exception:  # pragma: no cover - pyodbc missing or driver manager broken
        odbcinst = shutil.which("odbcinst")
        if not odbcinst:
            return []
        out = subprocess.run([odbcinst, "-q", "-d"], capture_output=True, text=True, check=False).stdout
        return re.findall(r"^\[(.+)\]$", out, flags=re.M)


# --- connection strings ---------------------------------------------------------------------------
def _odbc_value(value: str) -> str:
    """Quote an ODBC connection-string value when it contains special characters."""
    if any(c in value for c in ";{}=") or value != value.strip():
        return "{" + value.replace("}", "}}") + "}"
    return value


def odbc18_connection_string(
    host: str, port: int, user: str, password: str, database: str | None = None, **attributes: str
) -> str:
    """``attributes`` (e.g. ``Encrypt="strict"``, ``ServerCertificate=path``) replace or extend the defaults.

    The defaults trust the test server's certificate: ODBC 18 verifies it whenever the server forces
    encryption, even with ``Encrypt=no`` (an emulated server with ``encryption = "required"``)."""
    parts = [
        f"DRIVER={{{odbc18_driver_path()}}}",
        f"SERVER={host},{int(port)}",
        f"UID={_odbc_value(user)}",
        f"PWD={_odbc_value(password)}",
    ]
    if database:
        parts.append(f"DATABASE={_odbc_value(database)}")
    parts += [
        f"{key}={_odbc_value(value)}"
        for key, value in {"Encrypt": "no", "TrustServerCertificate": "yes", **attributes}.items()
    ]
    return ";".join(parts) + ";"


def freetds_connection_string(
    host: str, port: int, user: str, password: str, database: str | None = None, **attributes: str
) -> str:
    """``attributes`` (e.g. ``Encryption="require"``) are added to the defaults."""
    parts = [
        f"DRIVER={{{freetds_driver()}}}",
        f"SERVER={host}",
        f"Port={int(port)}",
        f"UID={_odbc_value(user)}",
        f"PWD={_odbc_value(password)}",
        "TDS_Version=7.4",
        "ClientCharset=UTF-8",
    ]
    if database:
        parts.append(f"DATABASE={_odbc_value(database)}")
    parts += [f"{key}={_odbc_value(value)}" for key, value in attributes.items()]
    return ";".join(parts) + ";"


# --- one function per stack -----------------------------------------------------------------------
# Each takes (host, port, user, password, database, *, autocommit, login_timeout, query_timeout);
# query_timeout (seconds, 0 = none) is the client-side statement timeout, which makes the driver
# send ATTENTION when it expires.


def odbc18(host: str, port: int, user: str, password: str, database: str | None = None, **options: Any) -> Any:
    return _pyodbc_connect(odbc18_connection_string(host, port, user, password, database), **options)


def freetds(host: str, port: int, user: str, password: str, database: str | None = None, **options: Any) -> Any:
    return _pyodbc_connect(freetds_connection_string(host, port, user, password, database), **options)


def _pyodbc_connect(connection_string: str, *, autocommit: bool, login_timeout: int, query_timeout: int) -> Any:
    import pyodbc

    conn = pyodbc.connect(connection_string, autocommit=autocommit, timeout=login_timeout)
    conn.timeout = query_timeout
    return conn


def pymssql(
    host: str,
    port: int,
    user: str,
    password: str,
    database: str | None = None,
    *,
    autocommit: bool,
    login_timeout: int,
    query_timeout: int,
) -> Any:
    import pymssql as _pymssql

    return _pymssql.connect(
        server=host,
        port=str(int(port)),
        user=user,
        password=password,
        database=database or "",
        tds_version="7.4",
        autocommit=autocommit,
        login_timeout=login_timeout,
        timeout=query_timeout,
    )


def pytds(
    host: str,
    port: int,
    user: str,
    password: str,
    database: str | None = None,
    *,
    autocommit: bool,
    login_timeout: int,
    query_timeout: int,
) -> Any:
    import pytds as _pytds

    # No cafile -> no TLS; tds_version defaults to 7.4. Binary parameters go as pytds.Binary(...).
    return _pytds.connect(
        dsn=host,
        port=int(port),
        user=user,
        password=password,
        database=database,
        autocommit=autocommit,
        login_timeout=login_timeout,
        timeout=query_timeout or None,
    )


_CONNECTORS = {"odbc18": odbc18, "freetds": freetds, "pymssql": pymssql, "pytds": pytds}


def connect(
    stack: str,
    host: str,
    port: int,
    user: str,
    password: str,
    database: str | None = None,
    autocommit: bool = True,
    login_timeout: int = DEFAULT_LOGIN_TIMEOUT,
    query_timeout: int = 0,
) -> Any:
    """Open a DB-API connection with the named client stack (one of ``STACKS``)."""
    try:
        fn = _CONNECTORS[stack]
    except KeyError:
        raise ValueError(f"unknown client stack {stack!r}; expected one of {STACKS}") from None
    return fn(
        host,
        port,
        user,
        password,
        database,
        autocommit=autocommit,
        login_timeout=login_timeout,
        query_timeout=query_timeout,
    )


# --- errors ---------------------------------------------------------------------------------------
# pyodbc formats each diagnostic record as "[SQLSTATE] <message> (<native>) (<function>)" and joins
# further records with "; ". The first record is the only one that carries the function name.
_PYODBC_FIRST = re.compile(r"\((-?\d+)\) \(SQL\w+\)")
_PYODBC_ANY = re.compile(r"\((-?\d+)\)(?=;|\s*$|\s+\()")


def error_number(exc: BaseException) -> int | None:
    """SQL Server error number carried by an exception from any of the four stacks, else None.

    - pyodbc (odbc18, freetds): the native error inside the message text, e.g. ``... (22022)``.
    - pymssql: ``args == (22022, b'...')`` (sometimes nested one level: ``((20009, b'...'),)``);
      ``_mssql`` exceptions also have ``.number``.
    - python-tds: ``exc.msg_no``.

    Client-side failures report 0 (ODBC 18) or a DB-Library number >= 20000 (FreeTDS, pymssql);
    0 is returned as None.
    """
    number: int | None = None
    module = type(exc).__module__ or ""

    if module.startswith("pytds"):
        number = getattr(exc, "msg_no", None)
    elif module.startswith("pymssql") or module.startswith("_mssql"):
        number = getattr(exc, "number", None)
        if not isinstance(number, int):
            args = exc.args
            if len(args) == 1 and isinstance(args[0], tuple):
                args = args[0]
            if args and isinstance(args[0], int):
                number = args[0]
    elif module == "pyodbc":
        text = " ".join(str(a) for a in exc.args[1:] or exc.args)
        match = _PYODBC_FIRST.search(text) or _PYODBC_ANY.search(text)
        if match:
            number = int(match.group(1))
    else:
        number = getattr(exc, "msg_no", None) or getattr(exc, "number", None)

    if isinstance(number, int) and number != 0:
        return number
    return None


def login_error_in_a_fresh_process(stack: str, host: str, port: int, user: str, password: str) -> str:
    """The text of the error a failed login raises, from a new Python process.

    pymssql keeps the last login message in process-wide state that it never clears (``clr_err(None)``
    assigns to locals), so after one failed login in a process later ones lose the server's message and
    report a stale number. A fidelity test of the server's answer therefore asks from a fresh process."""
    code = (
        "import sys\n"
        "from tests.clients import connect\n"
        "try:\n"
        f"    connect({stack!r}, {host!r}, {port!r}, {user!r}, {password!r})\n"
        "except Exception as exc:\n"
        "    print(repr(exc.args))\n"
        "else:\n"
        "    print('connected')\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    return done.stdout.strip()
