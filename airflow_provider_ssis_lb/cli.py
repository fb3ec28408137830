"""``ssis-lb``: the provider's command line. ``ssis-lb deploy MANIFEST [--dry-run]`` sets up the child
packages' Agent jobs on every server of the manifest (docs/manifest.md).

Connection ids are resolved as Airflow resolves them (``AIRFLOW_CONN_<ID>`` environment variables, a
secrets backend, or the metadata database), so the command runs wherever Airflow's configuration is.
Exit codes: 0 deployed (or nothing to do), 1 some server or job failed, 2 the manifest is invalid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .deploy import deploy, format_results
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as exc:
        print(f"ssis-lb: invalid manifest:\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    results = deploy(manifest, dry_run=args.dry_run)
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
