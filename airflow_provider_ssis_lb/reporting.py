"""Central logging: how a child's run reads in its task log, in its XCom summary and in its error.

Shared by the operator and the sensor, so a user reads every child's history the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.log import redact

from .runs import JobRun, RunResult, SsisMessage

SSIS_ERROR, SSIS_WARNING = 120, 110  # catalog.event_messages.message_type
XCOM_RUN_KEY = "sql_agent_run"  # the XCom key of a started run's handle (the return value is its summary)
XCOM_ERROR_KEY = "sql_agent_error"  # the XCom key of why a child failed (the cause of its error), for the summary
CAUSE_WIDTH = 160  # characters of a failed child's cause in the run summary table


def where(run: JobRun) -> str:
    return f"job '{run.job_name}' on server '{run.server}'"


def ended_at(result: RunResult) -> str | None:
    """The run's end (server local time): its start plus its duration."""
    if not result.started:
        return None
    end = dt.datetime.fromisoformat(result.started) + dt.timedelta(seconds=result.duration_seconds)
    return end.isoformat(timespec="milliseconds")


def _ssis_type(message: SsisMessage) -> str:
    return {SSIS_ERROR: "error", SSIS_WARNING: "warning"}.get(message.message_type, str(message.message_type))


def _ssis_text(message: SsisMessage) -> str:
    source = f" ({message.source})" if message.source else ""
    return f"execution {message.execution_id}{source}: {message.message}"


def summarize(result: RunResult, *, attached: bool = False) -> dict[str, Any]:
    """The XCom return value: the run, its outcome and its steps (durations in seconds, server local times).

    Passed through Airflow's secret masker: a step message may echo a sensitive parameter value
    (``manifest.register_secrets``), and XCom values are not masked on their own."""
    run = result.run
    summary = {
        "server": run.server,
        "conn_id": run.conn_id,
        "job": run.job_name,
        "job_id": run.job_id,
        "started": result.started,
        "ended": ended_at(result),
        "duration": result.duration_seconds,
        "outcome": result.outcome,
        "message": result.message,
        "attached": attached,
        "steps": [
            {
                "id": step.step_id,
                "name": step.step_name,
                "status": step.status,
                "started": step.started,
                "duration": step.duration_seconds,
                "message": step.message,
            }
            for step in result.steps
        ],
        "ssis_messages": [
            {"execution_id": m.execution_id, "type": _ssis_type(m), "source": m.source, "message": m.message}
            for m in result.ssis_messages
        ],
    }
    return redact(summary)


def failure_cause(result: RunResult) -> str:
    """Why the run failed: where (the failed step), then the SSIS errors, which say what went wrong, and
    last the step's own message (for an SSIS step mostly dtexec's banner)."""
    step = result.failed_step
    where_failed = f"at step {step.step_id} '{step.step_name}'" if step is not None else ""
    errors = [_ssis_text(m) for m in result.ssis_messages if m.message_type == SSIS_ERROR]
    message = step.message if step is not None else result.message
    head = " ".join(p for p in (f"the run {result.outcome}", where_failed) if p)
    if errors:
        return f"{head}: SSIS errors: " + " | ".join(errors) + f" | step message: {message}"
    return f"{head}: {message}"


def format_history(result: RunResult) -> str:
    """The run's history for the task log: outcome, each step with its message, SSIS messages, notes."""
    run = result.run
    lines = [
        f"SQL Server Agent {where(run)} (conn_id '{run.conn_id}'): {result.outcome.upper()}",
        f"  run started {result.started or '?'}, ended {ended_at(result) or '?'} (server time), "
        f"took {result.duration_seconds} s",
        f"  job message: {result.message}",
    ]
    for step in result.steps:
        lines.append(
            f"  step {step.step_id} '{step.step_name}': {step.status.upper()}, started {step.started or '?'}, "
            f"took {step.duration_seconds} s" + (f", retry {step.retries_attempted}" if step.retries_attempted else "")
        )
        lines.extend(f"      {line}" for line in (step.message or "(no message)").splitlines())
    for kind, code in (("errors", SSIS_ERROR), ("warnings", SSIS_WARNING)):
        texts = [_ssis_text(m) for m in result.ssis_messages if m.message_type == code]
        if texts:
            lines.append(f"  SSIS {kind} ({len(texts)}):")
            lines.extend(f"      {text}" for text in texts)
    if result.notes:
        lines.append("  notes:")
        lines.extend(f"      {note}" for note in result.notes)
    return "\n".join(lines)


def summary_rows(
    children: list[str], summaries: list[Any], handles: list[Any], errors: list[Any]
) -> list[dict[str, Any]]:
    """One row per child from its XCom: the summary of a finished run, else the handle of a started one
    and the cause of the child's failure."""
    rows = []
    for child, summary, handle, error in zip(children, summaries, handles, errors, strict=True):
        if summary:
            rows.append(
                {
                    "child": child,
                    "server": summary["server"],
                    "started": summary["started"],
                    "duration": summary["duration"],
                    "outcome": summary["outcome"],
                    "cause": "",
                }
            )
        else:
            server = handle["server"] if handle else "-"
            cause = str(error) if error else "no cause recorded (see the child's task log)"
            row = {"child": child, "server": server, "started": None, "duration": None, "outcome": "failed"}
            rows.append(row | {"cause": cause})
    return rows


def short(text: str, width: int = CAUSE_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(rows: list[dict[str, Any]]) -> str:
    """The run summary as a text table (child, server, start, duration, outcome, a failed child's cause)."""
    header = ("child", "server", "started (server time)", "duration", "outcome", "cause")
    lines = [
        (
            r["child"],
            r["server"],
            r["started"] or "-",
            "-" if r["duration"] is None else f"{r['duration']} s",
            r["outcome"],
            short(r.get("cause") or ""),
        )
        for r in rows
    ]
    return text_table(header, lines)


def text_table(header: Sequence[str], lines: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns under a header and a rule, as the run summary prints them."""
    widths = [max(len(str(v)) for v in column) for column in zip(header, *lines, strict=True)]
    render = lambda values: "  ".join(str(v).ljust(w) for v, w in zip(values, widths, strict=True))  # noqa: E731
    return "\n".join([render(header), render("-" * w for w in widths), *(render(line) for line in lines)])


def report_children(ti: Any, children: list[str], task_id: str = "child") -> list[dict[str, Any]]:
    """The run summary task's body: one row per child of the mapped ``task_id`` (in ``children``'s
    order, its map order), logged as a table and returned. When a child failed, the rows are pushed
    and AirflowFailException is raised naming the failed children, as a parent package fails."""
    indexes = range(len(children))
    summaries = [ti.xcom_pull(task_ids=task_id, map_indexes=i) for i in indexes]
    handles = [ti.xcom_pull(task_ids=task_id, key=XCOM_RUN_KEY, map_indexes=i) for i in indexes]
    errors = [ti.xcom_pull(task_ids=task_id, key=XCOM_ERROR_KEY, map_indexes=i) for i in indexes]
    rows = redact(summary_rows(children, summaries, handles, errors))  # a cause may echo a secret: XCom is unmasked
    print("run summary\n" + format_table(rows))
    failed = [r["child"] for r in rows if r["outcome"] != "succeeded"]
    if failed:
        ti.xcom_push(key="return_value", value=rows)
        raise AirflowFailException(f"{len(failed)} of {len(rows)} children failed: {', '.join(failed)}")
    return rows
