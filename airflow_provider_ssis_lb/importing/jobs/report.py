"""The import report: a table in the terminal, or JSON. It names every job's servers and kind, the servers
left out because their job differs (and how), schedules (listed, not converted), settings not kept, the
Airflow Variables to set, and jobs not imported. No secret value appears in it."""

from __future__ import annotations

import json
from typing import Any

from .run import ImportResult


def report_data(result: ImportResult, out: str) -> dict[str, Any]:
    jobs = []
    for merged in result.merged:
        kept = merged.kept[0]
        jobs.append(
            {
                "job": merged.name,
                "servers": merged.servers,
                "kind": kept.kind,
                "steps": len(kept.job.steps),
                "why_steps": kept.why_steps,
                "left_out": merged.left_out,
                "notes": sorted({note for job in merged.kept for note in job.notes}),
                "schedules": {job.conn_id: job.schedules for job in merged.kept if job.schedules},
                "secrets": sorted(kept.secrets.origins),
                "deploy_would_change": result.drift.get(merged.name, {}),
            }
        )
    return {
        "manifest": out,
        "servers": [
            {"conn_id": s.conn_id, "server_name": s.server_name, "jobs": s.jobs, "error": s.error}
            for s in result.servers
        ],
        "jobs": jobs,
        "secrets": result.secrets,
        "not_imported": result.rejected,
    }


def format_json(result: ImportResult, out: str) -> str:
    return json.dumps(report_data(result, out), indent=2, sort_keys=False)


def format_table(result: ImportResult, out: str) -> str:
    data = report_data(result, out)
    lines = [f"ssis-lb import-jobs: {len(data['jobs'])} job(s) written to {out}"]
    for server in data["servers"]:
        state = f"ERROR: {server['error']}" if server["error"] else f"{server['jobs']} job(s) read"
        lines.append(f"  {server['conn_id']} ({server['server_name'] or '?'}): {state}")
    rows = [("job", "servers", "kind", "notes")]
    for job in data["jobs"]:
        kind = job["kind"] if job["kind"] != "steps" else f"steps ({job['steps']})"
        notes = []
        if job["why_steps"] and job["kind"] == "steps":
            notes.append(f"kept as steps: {job['why_steps']}")
        if job["left_out"]:
            notes.append(f"differs on {', '.join(job['left_out'])} (left out there)")
        if job["secrets"]:
            notes.append(f"{len(job['secrets'])} secret(s)")
        rows.append((job["job"], ", ".join(job["servers"]), kind, "; ".join(notes)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines.append("")
    lines += [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
    for job in data["jobs"]:
        details = [
            *(f"differs on {conn}: {d}" for conn, diffs in job["left_out"].items() for d in diffs),
            *(f"not kept: {note}" for note in job["notes"]),
            *(
                f"a deploy would change it on {conn}: {c}"
                for conn, cs in job["deploy_would_change"].items()
                for c in cs
            ),
            *(
                f"schedule on {conn}: {s['name']} ({'enabled' if s['enabled'] else 'disabled'}) "
                f"{s['description']}".rstrip()
                for conn, schedules in job["schedules"].items()
                for s in schedules
            ),
        ]
        if details:
            lines.append(f"\n{job['job']}:")
            lines += [f"  {d}" for d in details]
    if data["secrets"]:
        lines.append(
            "\nSecrets: set these Airflow Variables to the values now in the jobs before deploying (not shown):"
        )
        lines += [f"  {name}: {origin}" for name, origin in data["secrets"].items()]
    for job, servers in data["not_imported"].items():
        lines += [f"\nnot imported: {job} on {conn}: {why}" for conn, why in servers.items()]
    lines.append(
        "\nSchedules are listed, not converted: schedule the DAG in Airflow, then disable the jobs' schedules."
    )
    return "\n".join(lines)
