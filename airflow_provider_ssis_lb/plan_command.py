"""``ssis-lb plan SOURCE``: the plan a parent DAG would follow, printed without running anything.

SOURCE is a manifest, or a DAG file whose parent DAGs ``build_parent_dag`` made (each such DAG's
``ensure_jobs`` task names its manifest). The plan is read from Agent history on the manifest's servers
(``planning.plan_pool``), the same way the DAG's ``plan`` task reads it.
"""

from __future__ import annotations

import argparse
import runpy
from pathlib import Path
from typing import Any

from .manifest import Manifest, load_manifest
from .packing import Plan
from .planning import PoolPlan, default_handoff, plan_pool
from .speeds import PRIOR_JOBS


def add_command(commands: Any) -> None:
    """Register ``plan`` on the ``ssis-lb`` sub-command parser."""
    command = commands.add_parser(
        "plan",
        help="print the plan of a manifest's children (order, servers, speeds) without running anything",
        description="Print the plan a parent DAG would follow for SOURCE: each server's learned speed, and each "
        "child's expected run time, planned server and start. Reads Agent history; starts nothing.",
    )
    command.add_argument("source", help="a manifest (YAML), or a DAG file of parent DAGs built from manifests")
    command.add_argument(
        "--equal-speeds", action="store_true", help="plan as if every server were as fast (no learned speeds)"
    )
    command.add_argument("--limit", type=int, default=10, help="recent successful runs read per job and server")


def manifests_of(source: str | Path) -> list[tuple[str, str]]:
    """(label, manifest path) of SOURCE: the manifest itself, or the manifest of each parent DAG of a DAG file."""
    path = Path(source)
    if path.suffix != ".py":
        return [("", str(path))]
    from airflow.sdk import DAG

    from .operators.sql_agent_jobs import SqlAgentEnsureJobsOperator

    names = runpy.run_path(str(path), run_name="ssis_lb_plan")
    found = []
    for value in names.values():
        if isinstance(value, DAG):
            found += [
                (value.dag_id, task.manifest) for task in value.tasks if isinstance(task, SqlAgentEnsureJobsOperator)
            ]
    if not found:
        raise ValueError(f"{path}: no parent DAG built from a manifest (build_parent_dag) in this file")
    return found


def run(args: argparse.Namespace) -> int:
    """Print the plan of every manifest of ``args.source``; 2 when a manifest is invalid or none is found."""
    import sys

    from .manifest import ManifestError

    try:
        sources = manifests_of(args.source)
        manifests = [(label, load_manifest(path)) for label, path in sources]
    except (ManifestError, ValueError, OSError) as exc:
        print(f"ssis-lb: cannot plan {args.source}:\n{exc}", file=sys.stderr)
        return 2
    for label, manifest in manifests:
        eligible = {c.job_name: c.servers for c in manifest.children}
        planned = plan_pool(
            manifest.pool, list(eligible), limit=args.limit, eligible=eligible, speed_aware=not args.equal_speeds
        )
        print(format_plan(manifest, planned, label))
    return 0


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    value = round(value)
    return f"{value // 3600}h{value % 3600 // 60:02d}m{value % 60:02d}s" if value >= 3600 else f"{value} s"


def format_plan(manifest: Manifest, planned: PoolPlan, label: str = "") -> str:
    """The plan as text: speeds per server, then one line per child in start order."""
    plan: Plan = planned.plan
    title = f"DAG {label}: " if label else ""
    lines = [
        f"{title}manifest '{manifest.name}' ({manifest.source or '?'}): {len(plan.children)} children on "
        f"{len(manifest.servers)} servers; plan: {plan.method}"
        + (
            f"; planned makespan {_seconds(plan.makespan)} (plain LPT {_seconds(plan.lpt_makespan)}),"
            f" {default_handoff():g} s hand-off per child"
            if plan.makespan is not None
            else ""
        ),
        "expected: seconds on a server of speed 1.00; server speeds (work per second against the median server, "
        f"shrunk towards 1.0 by n / (n + {PRIOR_JOBS:g}) in log scale, n = jobs compared with other servers):",
    ]
    for server in manifest.servers:
        speed = planned.speeds.get(server.conn_id)
        described = speed.describe() if speed is not None else "1.00"
        lines.append(f"  {server.conn_id:<20} capacity {server.capacity:<3} speed {described}")
    lines.append(f"  {'#':>3}  {'child':<32} {'expected':>10} {'server':<20} {'start':>10} {'end':>10}  preferred")
    for index, child in enumerate(plan.children):
        lines.append(
            f"  {index:>3}  {child.job_name:<32} {_seconds(child.expected):>10} {child.server or '-':<20} "
            f"{_seconds(child.start) if child.start is not None else '-':>10} "
            f"{_seconds(child.end) if child.end is not None else '-':>10}  "
            f"{child.preferred_server or '- (least loaded at start)'}"
        )
    return "\n".join(lines)
