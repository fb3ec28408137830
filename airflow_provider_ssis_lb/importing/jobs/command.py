"""``ssis-lb import-jobs``: the subcommand (docs/manifest.md, "Importing existing jobs")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .report import format_json, format_table
from .run import import_jobs

EXIT_FAILED, EXIT_INVALID = 1, 2


def add_parser(commands: Any) -> None:
    """Register ``import-jobs`` on the ``ssis-lb`` sub-command parser."""
    command = commands.add_parser(
        "import-jobs",
        help="write existing Agent jobs of one or several servers as a manifest, with a report",
        description="Read the Agent jobs of each server (SQLAgentReaderRole is enough) and write them as one "
        "manifest: same-named jobs become one child with their servers; a job that differs between servers is "
        "reported and left out where it differs. Nothing on the servers is changed.",
    )
    command.add_argument("conn_ids", nargs="+", metavar="CONN_ID", help="Airflow connection ids of the servers")
    command.add_argument("--out", required=True, help="the manifest file to write")
    command.add_argument(
        "--match", help="job names to import, a T-SQL LIKE pattern (%%: any text, _: one character, [a-c]: a set)"
    )
    command.add_argument("--category", help="only the jobs of this Agent job category")
    command.add_argument("--name", help="the manifest's name (default: the --out file name without .yaml)")
    command.add_argument(
        "--deploy-conn-id",
        action="append",
        default=[],
        metavar="CONN_ID=ADMIN_CONN_ID",
        help="write this deploy_conn_id for a server (a sysadmin connection for deploy)",
    )
    command.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    pairs = [item.partition("=") for item in args.deploy_conn_id]
    bad = [
        item
        for item, (conn, sep, admin) in zip(args.deploy_conn_id, pairs, strict=True)
        if not (conn and sep and admin)
    ]
    if bad:
        print(f"ssis-lb: --deploy-conn-id needs CONN_ID=ADMIN_CONN_ID, got {bad[0]!r}", file=sys.stderr)
        return EXIT_INVALID
    out = Path(args.out)
    result = import_jobs(
        args.conn_ids,
        match=args.match,
        category=args.category,
        name=args.name or out.stem,
        deploy_conn_ids={conn: admin for conn, _sep, admin in pairs},
    )
    if not result.merged:
        print("ssis-lb: no job matched; nothing written", file=sys.stderr)
    else:
        out.write_text(result.manifest_text, encoding="utf-8")
    print(format_json(result, str(out)) if args.json else format_table(result, str(out)))
    failed = [s.conn_id for s in result.servers if s.error]
    if failed:
        print(
            f"ssis-lb: import failed on {len(failed)} of {len(result.servers)} server(s): {', '.join(failed)}",
            file=sys.stderr,
        )
    return EXIT_FAILED if failed or not result.merged else 0
