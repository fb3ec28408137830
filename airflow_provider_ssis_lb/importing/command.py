"""``ssis-lb import-parent PARENT.dtsx``: a parent package into a manifest, a DAG file and a report.

Nothing is written unless the whole package imports: a file that is not a package, another package type,
an XML bomb or a missing reference is an error (exit 2) and leaves the output directory as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .dtsx import PackageError, read_package
from .parent import ImportOptions, ImportProblem, convert, identifier
from .render import render_dag, render_manifest, report_json, report_table

EXIT_INVALID = 2


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name.strip(), value.strip()


def _server(text: str) -> tuple[str, int]:
    conn_id, _, capacity = text.partition(":")
    if not conn_id.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not CONN_ID[:CAPACITY]")
    if capacity and not (capacity.isdigit() and 1 <= int(capacity) <= 1000):
        raise argparse.ArgumentTypeError(f"{text!r}: the capacity must be a number from 1 to 1000")
    return conn_id.strip(), int(capacity or 1)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = commands.add_parser(
        "import-parent",
        help="turn an SSIS parent package (.dtsx) into a manifest and a load-balanced DAG",
        description="Read PARENT.dtsx (SQL Server 2005 to 2022 formats) and write a manifest of its child packages "
        "and a DAG file that runs them over a pool of servers, keeping the precedence constraints; print what was "
        "converted, flagged and left out (docs/migration.md).",
    )
    cmd.add_argument("package", help="the parent package (.dtsx)")
    cmd.add_argument("--output-dir", default=".", help="where to write NAME.yaml and NAME.py (default: here)")
    cmd.add_argument("--name", help="the manifest's name and the files' stem (default: the package's name)")
    cmd.add_argument("--dag-id", help="default: ssis_<name>")
    cmd.add_argument(
        "--server",
        action="append",
        type=_server,
        default=[],
        metavar="CONN_ID[:CAPACITY]",
        help="a server of the pool (repeat); default: the servers the package's tasks name, capacity 1",
    )
    cmd.add_argument(
        "--server-map",
        action="append",
        type=_pair,
        default=[],
        metavar="SQLSERVER=CONN_ID",
        help="the conn id of a server the package names (default: its name in lower case, other characters as _)",
    )
    cmd.add_argument(
        "--conn-map",
        action="append",
        type=_pair,
        default=[],
        metavar="CONNECTION_MANAGER=CONN_ID",
        help="run Execute SQL tasks on this SQL Server connection manager with SQLExecuteQueryOperator",
    )
    cmd.add_argument("--catalog-folder", help="SSISDB folder of the project (Execute Package project references)")
    cmd.add_argument("--project", help="SSISDB project of the parent (Execute Package project references)")
    cmd.add_argument(
        "--job-package",
        action="append",
        type=_pair,
        default=[],
        metavar="JOB=PATH",
        help="the package an Agent job runs (\\SSISDB\\..., a .dtsx file path or an msdb path)",
    )
    cmd.add_argument(
        "--poll-interval",
        type=_seconds,
        default=10.0,
        help="seconds between the children's checks of msdb (default 10)",
    )
    cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    cmd.add_argument("--force", action="store_true", help="overwrite existing output files")


def run(args: argparse.Namespace) -> int:
    options = ImportOptions(
        servers=tuple(args.server),
        server_map=dict(args.server_map),
        conn_map=dict(args.conn_map),
        catalog_folder=args.catalog_folder,
        project=args.project,
        job_packages=dict(args.job_package),
        dag_id=args.dag_id,
        name=args.name,
    )
    try:
        result = convert(read_package(args.package), options)
    except (PackageError, ImportProblem) as exc:
        print(f"ssis-lb: {exc}\nnothing was written", file=sys.stderr)
        return EXIT_INVALID
    out = Path(args.output_dir)
    stem = identifier(result.name)
    manifest_path, dag_path = out / f"{stem}.yaml", out / f"{stem}.py"
    existing = [str(p) for p in (manifest_path, dag_path) if p.exists()]
    if existing and not args.force:
        print(
            f"ssis-lb: {', '.join(existing)} exist(s); pass --force to overwrite\nnothing was written", file=sys.stderr
        )
        return EXIT_INVALID
    texts = {
        manifest_path: render_manifest(result, dag_path.name),
        dag_path: render_dag(result, manifest_path.name, poll_interval=args.poll_interval),
    }
    out.mkdir(parents=True, exist_ok=True)
    for path, text in texts.items():  # each file whole or not at all
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    report = report_json if args.json else report_table
    print(report(result, str(manifest_path), str(dag_path)))
    return 0
