"""Server-rendered HTML for the fleet pages: tables and inline SVG, no build step, every value escaped.

Bars carry an SVG ``<title>`` (the browser's tooltip on hover) and link to their row in the table below
(click). Links to task instances open in the Airflow UI around the page: the UI shows plugin pages in an
iframe that may not navigate the top window, so a few lines of script hand the path to the UI's router.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from typing import Any

COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "canceled": "#757575",
    "retry": "#ef6c00",
    "running": "#1565c0",
    "waiting": "#b0bec5",
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


def fleet_page(view: dict[str, Any], refresh: int = 10) -> str:
    rows = []
    for s in view["servers"]:
        if s["pending"]:
            state = '<span class="muted">reading…</span>'
        elif s["reachable"]:
            state = '<span class="ok">reachable</span>'
        else:
            state = f'<span class="bad">unreachable</span><br><span class="muted">{escape(s["error"] or "")}</span>'
        agent = {"answers": '<span class="ok">answers</span>', "stopped": '<span class="bad">stopped</span>'}.get(
            s["agent"], '<span class="muted">unknown</span>'
        )
        load = "-" if s["running_count"] is None else f"{s['running_count']} / {s['capacity']}"
        jobs = "".join(
            f"<li><b>{escape(j['job'])}</b> at {escape(j['step'] or '?')}, {_duration(j['elapsed_seconds'])}: "
            f"{_who(j['started_by'])}</li>"
            for j in s["jobs"]
        )
        rows.append(
            f'<tr data-conn="{escape(s["conn_id"])}"><td><b>{escape(s["conn_id"])}</b><br>'
            f'<span class="muted">{escape(s["server"] or "")}</span></td><td>{state}</td><td>{agent}</td>'
            f'<td class="load">{load}</td><td><ul>{jobs}</ul></td><td class="age">{_age(s)}</td></tr>'
        )
    table = (
        "<table id=servers><tr><th>server</th><th>reachability</th><th>Agent</th><th>running / capacity</th>"
        f"<th>running jobs</th><th>read</th></tr>{''.join(rows)}</table>"
    )
    timeline = view["timeline"]
    start, end = dt.datetime.fromisoformat(timeline["start"]), dt.datetime.fromisoformat(timeline["end"])
    lanes = [(lane["conn_id"], lane["bars"]) for lane in timeline["lanes"]]
    svg, listing = _gantt(lanes, start, end, "run")
    body = (
        f"<h1>SQL Agent fleet</h1><p class=muted>shown at {escape(view['now'])} UTC; each server shows its last "
        f"reading and its age (readings are shared, and refreshed in the background when a few seconds old); "
        f"times are UTC (server times in the table below).</p>{table}"
        f"<h2>Last {view['hours']:g} hours</h2>{_legend()}{svg}{listing}"
    )
    if refresh > 0 and any(s["pending"] for s in view["servers"]):
        refresh = min(refresh, PENDING_REFRESH)
    return _page("SQL Agent fleet", body, refresh)


def run_page(view: dict[str, Any], refresh: int = 10) -> str:
    children = view["children"]
    starts = [dt.datetime.fromisoformat(c["start"]) for c in children if c["start"]]
    ends = [dt.datetime.fromisoformat(c["end"]) for c in children if c["end"]]
    title = f"{view['dag_id']} / {view['run_id']}"
    if not starts:
        body = f"<h1>Children of {escape(title)}</h1><p class=muted>No child has started an Agent job yet.</p>"
        return _page(title, body, refresh)
    start, end = min(starts), max(ends or starts)
    margin = max((end - start) * 0.02, dt.timedelta(seconds=1))
    lanes = [
        (conn, [dict(c, job=c["job"], started_by={}) for c in children if c["conn_id"] == conn])
        for conn in view["lanes"]
    ]
    svg, listing = _gantt(lanes, start - margin, end + margin, "child")
    body = f"<h1>Children of {escape(title)}</h1>{_legend()}{svg}{listing}"
    return _page(title, body, refresh)


def _pack(bars: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Each bar with the first row of its lane where it overlaps no other bar (runs at once stack up)."""
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


def _gantt(
    lanes: Sequence[tuple[str, list[dict[str, Any]]]], start: dt.datetime, end: dt.datetime, prefix: str
) -> tuple[str, str]:
    """An SVG with a lane per server and a bar per run, and the table the bars link to."""
    width, label, lane_h = 1100, 150, 34
    span = max((end - start).total_seconds(), 1.0)

    def x(value: str) -> float:
        t = (dt.datetime.fromisoformat(value) - start).total_seconds()
        return label + max(0.0, min(1.0, t / span)) * (width - label - 10)

    parts, rows, number, top = [], [], 0, 24
    for conn, bars in lanes:
        placed = _pack([b for b in bars if b.get("start")])
        height = (1 + max((row for row, _ in placed), default=0)) * lane_h
        parts.append(f'<text x="4" y="{top + 20}">{escape(conn)}</text>')
        bottom = top + height - 2
        parts.append(f'<line x1="{label}" x2="{width - 10}" y1="{bottom}" y2="{bottom}" stroke="#ccc"/>')
        for row, bar in placed:
            y = top + row * lane_h
            number += 1
            anchor = f"{prefix}-{number}"
            x0 = x(bar["start"])
            x1 = max(x(bar["end"] or bar["start"]), x0 + 3)
            who = bar.get("child") or (bar.get("started_by") or {}).get("label") or ""
            tip = f"{bar['job']} ({who}) {bar['outcome']}: {bar.get('message') or ''}"
            parts.append(
                f'<a href="#{anchor}"><rect class="bar" data-job="{escape(bar["job"])}"'
                f' data-outcome="{escape(bar["outcome"])}"'
                f' x="{x0:.1f}" y="{y + 4}" width="{x1 - x0:.1f}" height="{lane_h - 12}" rx="3"'
                f' fill="{COLOURS.get(bar["outcome"], "#90a4ae")}"><title>{escape(tip)}</title></rect></a>'
            )
            cell = (
                _who(bar["started_by"])
                if bar.get("started_by")
                else f'<a data-ui href="{escape(bar["url"])}">{escape(bar["child"])}</a>'
            )
            duration = bar.get("duration_seconds")
            if duration is None and bar.get("end"):
                duration = int(
                    (dt.datetime.fromisoformat(bar["end"]) - dt.datetime.fromisoformat(bar["start"])).total_seconds()
                )
            rows.append(
                f'<tr id="{anchor}" data-job="{escape(bar["job"])}"><td>{escape(conn)}</td>'
                f"<td>{escape(bar['job'])}</td>"
                f"<td>{cell}</td><td>{escape(bar.get('server_start') or '-')}</td><td>{_duration(duration)}</td>"
                f'<td style="color:{COLOURS.get(bar["outcome"], "#555")}">{escape(bar["outcome"])}</td>'
                f"<td>{escape(bar.get('message') or '')}</td></tr>"
            )
        top += height
    height = top + 20
    ticks = []
    for i in range(7):
        t = start + dt.timedelta(seconds=span * i / 6)
        tx = label + i / 6 * (width - label - 10)
        ticks.append(f'<text x="{tx:.0f}" y="14" text-anchor="middle" fill="#666">{t:%H:%M:%S}</text>')
    svg = (
        f'<svg id="{prefix}-chart" width="{width}" height="{height}" role="img" aria-label="timeline">'
        f"{''.join(ticks)}{''.join(parts)}</svg>"
    )
    table = (
        f'<table id="{prefix}-table"><tr><th>server</th><th>job</th><th>child / started by</th>'
        f"<th>started (server time)</th><th>duration</th><th>outcome</th><th>message</th></tr>{''.join(rows)}</table>"
    )
    return svg, table
