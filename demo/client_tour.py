"""Connect to every emulated SQL Server with every client stack and show who answered.

Run by scripts/demo.sh once the emulator has printed its READY lines:

    python demo/client_tour.py --config demo/servers.toml --server SQLNODE1=127.0.0.1:50123 ...

For each server and each stack (tests/clients.py) it runs

    SELECT @@SERVERNAME AS server_name, SUSER_SNAME() AS login_name, GETDATE() AS server_time

and prints one table row. Exit status 1 if any connection or query failed or a server answered
with another name than the one configured.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.clients import STACKS, connect, error_number  # noqa: E402

QUERY = "SELECT @@SERVERNAME AS server_name, SUSER_SNAME() AS login_name, GETDATE() AS server_time"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=REPO_ROOT / "demo" / "servers.toml")
    p.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT",
        help="where a configured server listens (repeat; from the emulator's READY lines)",
    )
    p.add_argument("--login", help="log in with this login on every server (default: first configured)")
    p.add_argument("--all-logins", action="store_true", help="log in with every configured login")
    p.add_argument("--stack", action="append", choices=STACKS, help="only these client stacks (repeat)")
    p.add_argument("--login-timeout", type=int, default=10)
    return p.parse_args(argv)


def parse_endpoints(items: list[str]) -> dict[str, tuple[str, int]]:
    endpoints: dict[str, tuple[str, int]] = {}
    for item in items:
        name, sep, addr = item.partition("=")
        host, sep2, port = addr.rpartition(":")
        if not (sep and sep2 and name and host and port.isdigit()):
            raise SystemExit(f"--server {item!r}: expected NAME=HOST:PORT")
        endpoints[name] = (host, int(port))
    return endpoints


def fmt_time(value: object) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    return str(value)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(line)
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print(line.replace("-", "="))
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    print(line)


def tour_one(stack: str, host: str, port: int, login: dict, timeout: int) -> tuple[list[str], bool]:
    started = time.monotonic()
    try:
        conn = connect(stack, host, port, login["name"], login["password"], login_timeout=timeout)
        try:
            cur = conn.cursor()
            cur.execute(QUERY)
            row = cur.fetchone()
            extra = cur.fetchall()
        finally:
            conn.close()
    except Exception as exc:  # show every failure in the table, keep touring
        ms = (time.monotonic() - started) * 1000
        num = error_number(exc)
        msg = " ".join(str(exc).split())
        if len(msg) > 90:
            msg = msg[:87] + "..."
        where = f"error {num}: " if num else ""
        return [stack, "-", login["name"], f"FAILED {type(exc).__name__}: {where}{msg}", f"{ms:.0f}"], False
    ms = (time.monotonic() - started) * 1000
    if row is None or extra:
        return [
            stack,
            "-",
            login["name"],
            f"FAILED: expected one row, got {row!r} + {extra!r}",
            f"{ms:.0f}",
        ], False
    server_name, login_name, server_time = row
    return [stack, str(server_name), str(login_name), fmt_time(server_time), f"{ms:.0f}"], True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with open(args.config, "rb") as fh:
        config = tomllib.load(fh)
    endpoints = parse_endpoints(args.server)
    stacks = args.stack or list(STACKS)

    rows: list[list[str]] = []
    ok = True
    for server in config.get("servers", []):
        name = server["name"]
        if name not in endpoints:
            print(f"client_tour: no --server given for {name}", file=sys.stderr)
            ok = False
            continue
        host, port = endpoints[name]
        logins = server.get("logins", [])
        if args.login:
            logins = [lg for lg in logins if lg["name"] == args.login]
        elif not args.all_logins:
            logins = logins[:1]
        if not logins:
            print(f"client_tour: no usable login configured for {name}", file=sys.stderr)
            ok = False
            continue
        for login in logins:
            for stack in stacks:
                row, good = tour_one(stack, host, port, login, args.login_timeout)
                if good and row[1] != name:
                    row[3] += f"  (MISMATCH: expected @@SERVERNAME {name})"
                    good = False
                row.insert(2, str(port))
                rows.append(row)
                ok = ok and good

    print_table(["stack", "server", "port", "login", "server time (GETDATE())", "ms"], rows)
    if not ok:
        print("client_tour: some connections FAILED (see table above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
