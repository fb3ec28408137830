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

from . import plan_command
from .deploy import deploy, format_results
from .importing import command as import_parent
from .importing.jobs import command as import_jobs
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
    import_jobs.add_parser(commands)
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
        return import_jobs.run(args)
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


if __name__ == "__main__":
    sys.exit(main())
