"""``ssis-lb``: the provider's command line. ``ssis-lb deploy MANIFEST [--dry-run] [--adopt]`` sets up the
child packages' Agent jobs on every server of the manifest; ``ssis-lb import-jobs CONN_ID ... --out FILE``
writes existing Agent jobs as a manifest (docs/manifest.md); ``ssis-lb import-parent PARENT.dtsx`` turns an
SSIS parent package into a manifest and a DAG (docs/migration.md);
``ssis-lb plan SOURCE`` prints the plan of a manifest's children without running anything (``plan_command``).

Connection ids are resolved as Airflow's own ``airflow connections get`` resolves them: the secrets backend
of ``[secrets] backend`` if one is configured, then ``AIRFLOW_CONN_<ID>`` environment variables, then the
metadata database (Admin > Connections, ``airflow connections add``). The command runs wherever Airflow's
configuration and metadata database are reachable.
Exit codes: 0 deployed (or nothing to do), 1 some server or job failed, 2 the manifest is invalid.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import plan_command
from .deploy import deploy, format_results
from .importing import command as import_parent
from .manifest import ManifestError, load_manifest

EXIT_FAILED, EXIT_INVALID = 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssis-lb", description="SSIS load balancing over SQL Server Agent.")
    commands = parser.add_subparsers(dest="command", required=True)
    deploy_cmd = commands.add_parser(
        "deploy",
        help="create or update the child packages' Agent jobs on every server of a manifest",
        description="Create or update, on every server of MANIFEST, one Agent job per child package. "
        "Idempotent: running it again changes nothing. Only jobs marked as managed by ssis-lb are changed.",
    )
    deploy_cmd.add_argument("manifest", help="the manifest file (YAML, see docs/manifest.md)")
    deploy_cmd.add_argument("--dry-run", action="store_true", help="print the differences per server, change nothing")
    deploy_cmd.add_argument(
        "--adopt",
        action="store_true",
        help="take over the manifest's jobs that exist but are not managed by ssis-lb (e.g. imported ones)",
    )
    import_cmd = commands.add_parser(
        "import-jobs",
        help="write existing Agent jobs of one or several servers as a manifest, with a report",
        description="Read the Agent jobs of each server (SQLAgentReaderRole is enough) and write them as one "
        "manifest: same-named jobs become one child with their servers; a job that differs between servers is "
        "reported and left out where it differs. Nothing on the servers is changed.",
    )
    import_cmd.add_argument("conn_ids", nargs="+", metavar="CONN_ID", help="Airflow connection ids of the servers")
    import_cmd.add_argument("--out", required=True, help="the manifest file to write")
    import_cmd.add_argument(
        "--match", help="job names to import, a T-SQL LIKE pattern (%%: any text, _: one character, [a-c]: a set)"
    )
    import_cmd.add_argument("--category", help="only the jobs of this Agent job category")
    import_cmd.add_argument("--name", help="the manifest's name (default: the --out file name without .yaml)")
    import_cmd.add_argument(
        "--deploy-conn-id",
        action="append",
        default=[],
        metavar="CONN_ID=ADMIN_CONN_ID",
        help="write this deploy_conn_id for a server (a sysadmin connection for deploy)",
    )
    import_cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    import_parent.add_parser(commands)
    plan_command.add_command(commands)
    return parser


@contextlib.contextmanager
def server_context() -> Iterator[None]:
    """Look connections up as Airflow's server processes and its ``connections`` commands do, the metadata
    database included: outside a task, the Task SDK searches only the environment and a configured secrets
    backend unless the process says it is a server (``_AIRFLOW_PROCESS_CONTEXT``, set the same way by
    ``airflow connections get`` and by the API server)."""
    previous = os.environ.get("_AIRFLOW_PROCESS_CONTEXT")
    os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "server"
    try:
        yield
    finally:  # main() also runs in-process (tests): leave the caller's environment as it was
        if previous is None:
            os.environ.pop("_AIRFLOW_PROCESS_CONTEXT", None)
        else:
            os.environ["_AIRFLOW_PROCESS_CONTEXT"] = previous


def main(argv: Sequence[str] | None = None) -> int:
    with server_context():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "import-parent":
        return import_parent.run(args)
    if args.command == "import-jobs":
        return _import_jobs(args)
    if args.command == "plan":
        return plan_command.run(args)
    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as exc:
        print(f"ssis-lb: invalid manifest:\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    results = deploy(manifest, dry_run=args.dry_run, adopt=args.adopt)
    print(format_results(results, dry_run=args.dry_run))
    failed = [r.conn_id for r in results if r.failed]
    if failed:
        print(
            f"ssis-lb: deploy failed on {len(failed)} of {len(results)} server(s): {', '.join(failed)}", file=sys.stderr
        )
        return EXIT_FAILED
    return 0


def _import_jobs(args: argparse.Namespace) -> int:
    from .importing.jobs.report import format_json, format_table
    from .importing.jobs.run import import_jobs

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


if __name__ == "__main__":
    sys.exit(main())
