"""Server-rendered HTML for the fleet pages: tables and inline SVG, no build step, every value escaped.

Bars carry an SVG ``<title>`` (the browser's tooltip on hover) and link to their row in the table below
(click). Links to task instances open in the Airflow UI around the page: the UI shows plugin pages in an
iframe that may not navigate the top window, so a few lines of script hand the path to the UI's router.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "canceled": "#757575",
    "retry": "#ef6c00",
    "running": "#1565c0",
    "waiting": "#ffca28",
    "unknown": "#b0bec5",
}
STYLE = """
body{font:14px system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 6px}
table{border-collapse:collapse;margin:6px 0}th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f4f6f8}.muted{color:#666}.bad{color:#c62828;font-weight:600}
.ok{color:#2e7d32;font-weight:600}.tag{display:inline-block;padding:0 6px;border-radius:8px;background:#eceff1}
.legend span{display:inline-block;margin-right:12px}.legend i{display:inline-block;width:10px;height:10px;
margin-right:4px}svg text{font:12px system-ui,sans-serif}tr:target{background:#fff8e1}
nav.window a{margin-right:10px}nav.window b{margin-right:10px}rect.focused{stroke:#0d47a1;stroke-width:3}
tr.focused{background:#e3f2fd}#focus{border:1px solid #90caf9;padding:6px 10px;margin:10px 0;background:#f5fbff}
"""
# Inside the UI's iframe (sandboxed without allow-top-navigation), a task link asks the UI's own window to
# navigate: a function made and timed in that window navigates as that window, not as the frame.
TOP_LINKS = """<script>
document.addEventListener("click", function (event) {
  var a = event.target.closest && event.target.closest("a[data-ui]");
  if (!a || window.top === window) return;
  try {
    window.top.setTimeout(window.top.Function("h", "location.assign(h)"), 0, a.getAttribute("href"));
    event.preventDefault();
  } catch (e) { /* not allowed: the link opens in the frame */ }
});
</script>"""


def _page(title: str, body: str, refresh: int) -> str:
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh > 0 else ""
    return (
        f'<!doctype html><html><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}{TOP_LINKS}</body></html>"
    )


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {sec:02d}s" if hours else f"{minutes}m {sec:02d}s" if minutes else f"{sec}s"


def _who(who: dict[str, Any]) -> str:
    if who.get("kind") == "airflow":
        return (
            f'<a data-ui href="{escape(who["url"])}">{escape(who["dag_id"])} / {escape(who["run_id"])} / '
            f"{escape(who['child'])}</a>"
        )
    return f'<span class="tag">{escape(who["label"])}</span>'


def _legend() -> str:
    items = "".join(f'<span><i style="background:{c}"></i>{escape(k)}</span>' for k, c in COLOURS.items())
    return f'<p class="legend">{items}</p>'


PENDING_REFRESH = 2  # seconds: while a server's first reading is under way, the page reloads this soon


def _age(server: dict[str, Any]) -> str:
    if server["pending"]:
        return '<span class="muted">reading…</span>'
    return f'{_duration(server["age_seconds"])} ago<br><span class="muted">{escape(server["read_at"] or "")}</span>'


def _speed(server: dict[str, Any]) -> str:
    """The learned speed factor and how many jobs it compares (``speeds.py``)."""
    jobs = server["speed_jobs"]
    evidence = f"{jobs} job{'s' * (jobs != 1)} compared" if jobs else "no job compared"
    return f'{server["speed"]:.2f}<br><span class="muted">{evidence}</span>'


def _agent(server: dict[str, Any]) -> str:
    if server["agent"] == "answers":
        return '<span class="ok">answers</span>'
    if server["agent"] == "stopped":
        return '<span class="bad">stopped</span>'
    if server["agent_note"]:  # reachable, idle, and the login may not read Agent's state: not an outage
        return (
            f'<span class="muted agent-hidden" title="{escape(server["agent_note"])}">idle; state not visible</span>'
            '<br><span class="muted">needs VIEW SERVER STATE</span>'
        )
    return '<span class="muted">-</span>'


def _query(params: dict[str, Any], **changes: Any) -> str:
    merged = {k: v for k, v in {**params, **changes}.items() if v is not None}
    return "?" + urlencode(merged) if merged else "?"


def _window_control(view: dict[str, Any], params: dict[str, Any]) -> str:
    """Links to the timeline windows: fit to the runs shown, or a fixed number of hours."""
    current = view["hours"]
    items = [
        "<b>fit to activity</b>"
        if current is None
        else f'<a href="{escape(_query(params, hours=None))}">fit to activity</a>'
    ]
    for hours in view["window_choices"]:
        label = f"{int(hours * 60)} min" if hours < 1 else f"{hours:g} h"
        if current == hours:
            items.append(f"<b>{label}</b>")
        else:
            items.append(f'<a href="{escape(_query(params, hours=hours))}">{label}</a>')
    return f'<nav class="window" id="window">window: {" ".join(items)}</nav>'


def _focus(focus: dict[str, Any] | None) -> str:
    if focus is None:
        return ""
    where = f"{escape(focus['conn_id'])}" + (f" ({escape(focus['server'])})" if focus["server"] else "")
    if not focus["known_server"]:
        missing = "is not one of the fleet's servers ([ssis_lb] fleet_conn_ids)"
        return f'<section id="focus"><b>{where}</b> {missing}.</section>'
    job = escape(focus["job"] or focus["job_id"])
    rows = "".join(
        f'<tr class="{"focused" if r["focused"] else ""}"><td>{escape(r["conn_id"])}</td>'
        f"<td>{escape(r['server_start'] or '-')}</td>"
        f"<td>{_duration(r.get('duration_seconds'))}</td><td>{escape(r['outcome'])}</td>"
        f"<td>{escape(r.get('failed_step') or '')}</td><td>{_who(r['started_by'])}</td></tr>"
        for r in focus["runs"]
    )
    note = (
        "the task's run is marked below"
        if focus["found"]
        else "the task's run is not in this server's history as read (older than the history kept, or not read yet)"
    )
    return (
        f'<section id="focus"><h2>Job {job} on {where}</h2><p class="muted">{note}</p>'
        "<table><tr><th>server</th><th>started (server time)</th><th>duration</th><th>outcome</th><th>failed step</th>"
        f"<th>started by</th></tr>{rows}</table></section>"
    )


def fleet_page(view: dict[str, Any], refresh: int = 10, params: dict[str, Any] | None = None) -> str:
    params = dict(params or {})
    rows = []
    for s in view["servers"]:
        if s["pending"]:
            state = '<span class="muted">reading…</span>'
        elif s["reachable"]:
            state = '<span class="ok">reachable</span>'
        else:
            state = f'<span class="bad">unreachable</span><br><span class="muted">{escape(s["error"] or "")}</span>'
        load = "-" if s["running_count"] is None else f"{s['running_count']} / {s['capacity']}"
        jobs = "".join(
            f"<li><b>{escape(j['job'])}</b> at {escape(j['step'] or '?')}, {_duration(j['elapsed_seconds'])}: "
            f"{_who(j['started_by'])}</li>"
            for j in s["jobs"]
        )
        rows.append(
            f'<tr data-conn="{escape(s["conn_id"])}"><td><b>{escape(s["conn_id"])}</b><br>'
            f'<span class="muted">{escape(s["server"] or "")}</span></td><td>{state}</td>'
            f'<td class="agent">{_agent(s)}</td>'
            f'<td class="load">{load}</td><td class="speed">{_speed(s)}</td><td><ul>{jobs}</ul></td>'
            f'<td class="age">{_age(s)}</td></tr>'
        )
    table = (
        "<table id=servers><tr><th>server</th><th>reachability</th><th>Agent</th><th>running / capacity</th>"
        f"<th>speed</th><th>running jobs</th><th>read</th></tr>{''.join(rows)}</table>"
    )
    timeline = view["timeline"]
    start, end = dt.datetime.fromisoformat(timeline["start"]), dt.datetime.fromisoformat(timeline["end"])
    down = {s["conn_id"]: s["history_from"] for s in view["servers"] if s["history_from"]}
    lanes = [
        Lane(
            lane["conn_id"],
            lane["bars"],
            lane["capacity"],
            f"down; as read at {down[lane['conn_id']]}" if lane["conn_id"] in down else "",
        )
        for lane in timeline["lanes"]
    ]
    svg, listing = _gantt(lanes, start, end, "run")
    heading = (
        f"Activity since {start:%H:%M} UTC (fit to the runs shown)"
        if timeline["fit"]
        else f"Last {_hours(view['hours'])}"
    )
    body = (
        f"<h1>SQL Agent fleet</h1><p class=muted>shown at {escape(view['now'])} UTC; each server shows its last "
        f"reading and its age (readings are shared, and refreshed in the background when a few seconds old); "
        f"times are UTC (server times in the table below).</p>{_focus(view.get('focus'))}{table}"
        f"<h2>{escape(heading)}</h2>{_window_control(view, params)}{_legend()}{svg}{listing}"
    )
    if refresh > 0 and any(s["pending"] for s in view["servers"]):
        refresh = min(refresh, PENDING_REFRESH)
    return _page("SQL Agent fleet", body, refresh)


def _hours(hours: float) -> str:
    return f"{int(hours * 60)} minutes" if hours < 1 else f"{hours:g} hours"


def run_page(view: dict[str, Any], refresh: int = 10, params: dict[str, Any] | None = None) -> str:
    params = dict(params or {})
    tries = view["tries"]
    starts = [dt.datetime.fromisoformat(t["start"]) for t in tries if t["start"]]
    ends = [dt.datetime.fromisoformat(t["end"]) for t in tries if t["end"]]
    title = f"{view['dag_id']} / {view['run_id']}"
    if not starts:
        body = f"<h1>Children of {escape(title)}</h1><p class=muted>No child has started an Agent job yet.</p>"
        return _page(title, body, refresh)
    start, end = min(starts), max(ends + starts)
    margin = max((end - start) * 0.02, dt.timedelta(seconds=1))
    bars = [dict(t, label=_try_label(t), started_by={}, anchor=f"try-{n}") for n, t in enumerate(tries, 1)]
    lanes = [
        Lane(conn, [b for b in bars if b["conn_id"] == conn], view["capacity"].get(conn, 1)) for conn in view["lanes"]
    ]
    svg, _listing = _gantt(lanes, start - margin, end + margin, "child")
    body = f"<h1>Children of {escape(title)}</h1>{_legend()}{svg}{_tries_table(view, params)}"
    return _page(title, body, refresh)


def _try_label(entry: dict[str, Any]) -> str:
    return f"{entry['child']} (try {entry['try_number']})" if entry.get("try_number") else entry["child"]


def _tries_table(view: dict[str, Any], params: dict[str, Any]) -> str:
    """Every try of every child, by start (newest first unless ``order=oldest``): the header sorts."""
    newest = view["order"] == "newest"
    flip = _query(params, order="oldest" if newest else "newest")
    rows = []
    for n, t in enumerate(view["tries"], 1):
        colour = COLOURS.get(t["outcome"], "#555")
        rows.append(
            f'<tr id="try-{n}" data-job="{escape(t["job"])}" data-child="{escape(t["child"])}"'
            f' data-try="{t["try_number"] or ""}" data-outcome="{escape(t["outcome"])}">'
            f"<td>{escape(t['conn_id'])}</td><td>{escape(t['job'])}</td>"
            f'<td><a data-ui href="{escape(t["url"])}">{escape(t["child"])}</a></td>'
            f"<td>{t['try_number'] or '-'}</td><td>{escape(t['server_start'] or '-')}</td>"
            f"<td>{_duration(t['duration_seconds'])}</td><td>{escape(t.get('steps') or '-')}</td>"
            f'<td style="color:{colour}">{escape(t["outcome"])}</td>'
            f"<td class=failed-step>{escape(t.get('failed_step') or '')}</td>"
            f"<td>{escape(t.get('message') or '')}</td></tr>"
        )
    arrow = "▼ newest first" if newest else "▲ oldest first"
    return (
        '<table id="child-table"><tr><th>server</th><th>job</th><th>child</th><th>try</th>'
        f'<th><a id="sort-start" href="{escape(flip)}">started (server time) {arrow}</a></th><th>duration</th>'
        f"<th>steps</th><th>outcome</th><th>failed step</th><th>message</th></tr>{''.join(rows)}</table>"
    )


@dataclass(frozen=True)
class Lane:
    """A server's lane: its bars, its capacity (a row per slot) and a note (e.g. the server is down)."""

    conn_id: str
    bars: list[dict[str, Any]]
    capacity: int = 1
    note: str = ""


def _pack(bars: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Each bar with the first row (slot) of its lane where it overlaps no other bar (runs at once stack up)."""
    ends: list[str] = []
    placed = []
    for bar in sorted(bars, key=lambda b: b["start"]):
        end = bar.get("end") or bar["start"]
        row = next((i for i, last in enumerate(ends) if last <= bar["start"]), len(ends))
        if row == len(ends):
            ends.append(end)
        else:
            ends[row] = end
        placed.append((row, bar))
    return placed


def _tip(bar: dict[str, Any], who: str) -> str:
    """The bar's hover text: what ran, for whom, when, how long, and where it failed."""
    lines = [f"{bar['job']} ({who})" if who else bar["job"], f"outcome: {bar['outcome']}"]
    lines.append(f"started {bar.get('server_start') or '-'} server time, {_duration(_seconds(bar))}")
    if bar.get("steps"):
        lines.append(f"ran {bar['steps']}")
    if bar.get("failed_step"):
        lines.append(f"failed at {bar['failed_step']}")
    if bar.get("message"):
        lines.append(str(bar["message"]))
    return "\n".join(lines)


def _seconds(bar: dict[str, Any]) -> int | None:
    if bar.get("duration_seconds") is not None:
        return int(bar["duration_seconds"])
    if bar.get("end") and bar.get("start"):
        return int((dt.datetime.fromisoformat(bar["end"]) - dt.datetime.fromisoformat(bar["start"])).total_seconds())
    return None


def _bar_text(bar: dict[str, Any], x0: float, x1: float, baseline: float) -> str:
    """The job's name on its bar, when the bar is wide enough to hold some of it (else the hover says it)."""
    room = int((x1 - x0 - 8) / 7)  # about 7 px a character at 12 px
    if room < 4:
        return ""
    name = str(bar.get("label") or bar["job"])
    text = name if len(name) <= room else name[: room - 1] + "…"
    return f'<text x="{x0 + 4:.1f}" y="{baseline}" fill="#fff" pointer-events="none">{escape(text)}</text>'


def _ticks(start: dt.datetime, span: float, label: int, width: int) -> list[str]:
    """Seven time labels; the first and last aligned inside the chart so neither is cut off."""
    ticks = []
    for i in range(7):
        t = start + dt.timedelta(seconds=span * i / 6)
        tx = label + i / 6 * (width - label - 10)
        anchor = "start" if i == 0 else "end" if i == 6 else "middle"
        ticks.append(f'<text class="tick" x="{tx:.0f}" y="14" text-anchor="{anchor}" fill="#666">{t:%H:%M:%S}</text>')
    return ticks


def _gantt(lanes: Sequence[Lane], start: dt.datetime, end: dt.datetime, prefix: str) -> tuple[str, str]:
    """An SVG with a lane per server and a row per slot, a bar per run, and the table the bars link to."""
    width, label, row_h = 1100, 150, 26
    span = max((end - start).total_seconds(), 1.0)

    def x(value: str) -> float:
        t = (dt.datetime.fromisoformat(value) - start).total_seconds()
        return label + max(0.0, min(1.0, t / span)) * (width - label - 10)

    parts, rows, number, top = [], [], 0, 24
    for lane in lanes:
        placed = _pack([b for b in lane.bars if b.get("start")])
        slots = max(lane.capacity, 1)
        used = 1 + max((row for row, _ in placed), default=0)
        height = max(slots, used) * row_h + 8
        parts.append(f'<g class="lane" data-conn="{escape(lane.conn_id)}">')
        parts.append(f'<text x="4" y="{top + 16}" font-weight="600">{escape(lane.conn_id)}</text>')
        if lane.note:
            parts.append(f'<text x="4" y="{top + 30}" fill="#c62828">{escape(lane.note[:24])}</text>')
        for slot in range(max(slots, used)):
            y = top + slot * row_h
            name = f"slot {slot + 1}" if slot < slots else "over capacity"
            parts.append(
                f'<line class="slot" x1="{label}" x2="{width - 10}" y1="{y + row_h}" y2="{y + row_h}" '
                f'stroke="{"#eee" if slot < slots - 1 else "#bbb"}"/>'
                f'<text x="{label - 6}" y="{y + 17}" text-anchor="end" fill="#999" font-size="10">{name}</text>'
            )
        for row, bar in placed:
            y = top + row * row_h
            number += 1
            anchor = bar.get("anchor") or f"{prefix}-{number}"
            x0 = x(bar["start"])
            x1 = max(x(bar["end"] or bar["start"]), x0 + (6 if bar.get("focused") else 3))
            who = bar.get("label") or bar.get("child") or (bar.get("started_by") or {}).get("label") or ""
            focused = " focused" if bar.get("focused") else ""
            parts.append(
                f'<a href="#{anchor}"><rect class="bar{focused}" data-job="{escape(bar["job"])}"'
                f' data-outcome="{escape(bar["outcome"])}" data-slot="{row + 1}"'
                f' x="{x0:.1f}" y="{y + 3}" width="{x1 - x0:.1f}" height="{row_h - 6}" rx="3"'
                f' fill="{COLOURS.get(bar["outcome"], "#90a4ae")}"><title>{escape(_tip(bar, who))}</title></rect>'
                f"{_bar_text(bar, x0, x1, y + row_h - 9)}</a>"
            )
            cell = _who(bar["started_by"]) if bar.get("started_by") else escape(who)
            colour = COLOURS.get(bar["outcome"], "#555")
            rows.append(
                f'<tr id="{anchor}" class="{focused.strip()}" data-job="{escape(bar["job"])}">'
                f"<td>{escape(lane.conn_id)}</td><td>{escape(bar['job'])}</td><td>{cell}</td>"
                f"<td>{escape(bar.get('server_start') or '-')}</td><td>{_duration(_seconds(bar))}</td>"
                f"<td>{escape(bar.get('steps') or '-')}</td>"
                f'<td style="color:{colour}">{escape(bar["outcome"])}</td>'
                f"<td class=failed-step>{escape(bar.get('failed_step') or '')}</td>"
                f"<td>{escape(bar.get('message') or '')}</td></tr>"
            )
        parts.append("</g>")
        top += height
    height = top + 20
    svg = (
        f'<svg id="{prefix}-chart" width="{width}" height="{height}" role="img" aria-label="timeline">'
        f"{''.join(_ticks(start, span, label, width))}{''.join(parts)}</svg>"
    )
    table = (
        f'<table id="{prefix}-table"><tr><th>server</th><th>job</th><th>child / started by</th>'
        "<th>started (server time)</th><th>duration</th><th>steps</th><th>outcome</th><th>failed step</th>"
        f"<th>message</th></tr>{''.join(rows)}</table>"
    )
    return svg, table
