"""How fast each server runs the same packages, learned from Agent history (no I/O here).

A server's speed factor says how much work it does per second relative to the pool's median server: a job
of ``p`` seconds at speed 1.0 takes ``p / factor`` seconds there. It is learned only from jobs that ran on
more than one server, so a server that happens to get the long packages is not called slow:

1. each (job, server) cell is the median of that job's recent successful run times there (one slow run
   under a noisy neighbour does not move it);
2. in log space, ``log(time) = job effect + server effect``; Tukey's median polish fits both by
   alternating medians (robust: a job that behaves oddly on one server is one vote of many), and the
   server effects are centred so that the median server is 1.0;
3. with little history the factor is shrunk towards 1.0: the log factor is multiplied by
   ``n / (n + PRIOR_JOBS)``, ``n`` being how many jobs compared that server with others. With 5 jobs a
   measured 2.0 becomes 1.41, with 45 it becomes 1.87.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

PRIOR_JOBS = 5.0  # how many compared jobs count as much as the prior belief "every server is as fast"
ROUNDS = 10  # median polish rounds at most; it settles in a few
SETTLED = 1e-4  # log units: stop once no effect moves more than this

History = Mapping[str, Mapping[str, Sequence[float]]]  # job -> conn id -> recent successful run times (s)


@dataclass(frozen=True)
class SpeedFactor:
    """One server's learned speed: ``factor`` (shrunk), ``raw`` (before shrinking), and the evidence."""

    conn_id: str
    factor: float = 1.0
    raw: float = 1.0
    jobs: int = 0  # jobs that ran both here and on another server

    def describe(self) -> str:
        if not self.jobs:
            return f"{self.factor:.2f} (no job compared with another server)"
        return f"{self.factor:.2f} (measured {self.raw:.2f} over {self.jobs} job{'s' * (self.jobs != 1)})"


def cell_medians(history: History) -> dict[str, dict[str, float]]:
    """job -> conn id -> median run time, leaving out empty cells and runs under a second (Agent's history has
    whole seconds, and a 0 s run says nothing about speed)."""
    cells: dict[str, dict[str, float]] = {}
    for job, per_server in history.items():
        row = {s: float(statistics.median(d)) for s, d in per_server.items() if d}
        row = {s: m for s, m in row.items() if m >= 1.0}
        if row:
            cells[job] = row
    return cells


def learn_speeds(history: History, servers: Iterable[str], prior_jobs: float = PRIOR_JOBS) -> dict[str, SpeedFactor]:
    """Every server's speed factor from ``history`` (servers with nothing to compare get 1.0)."""
    names = list(servers)
    logs = {job: {s: math.log(m) for s, m in row.items() if s in names} for job, row in cell_medians(history).items()}
    logs = {job: row for job, row in logs.items() if len(row) >= 2}  # only jobs seen on two servers compare
    effect = _median_polish(logs, names)
    evidence = {s: sum(1 for row in logs.values() if s in row) for s in names}
    result = {}
    for s in names:
        n = evidence[s]
        if n == 0:
            result[s] = SpeedFactor(s)
            continue
        log_speed = -effect[s]  # a server where jobs take longer is slower
        weight = n / (n + prior_jobs)
        result[s] = SpeedFactor(s, math.exp(log_speed * weight), math.exp(log_speed), n)
    return result


def _median_polish(logs: Mapping[str, Mapping[str, float]], servers: Collection[str]) -> dict[str, float]:
    """Server effects of the additive fit ``log time = job + server``, centred on the median server."""
    server_effect = dict.fromkeys(servers, 0.0)
    if not logs:
        return server_effect
    job_effect = dict.fromkeys(logs, 0.0)
    columns: dict[str, list[tuple[str, float]]] = {}
    for job, row in logs.items():
        for s, v in row.items():
            columns.setdefault(s, []).append((job, v))
    for _ in range(ROUNDS):
        moved = 0.0
        for job, row in logs.items():
            new = statistics.median([v - server_effect[s] for s, v in row.items()])
            moved, job_effect[job] = max(moved, abs(new - job_effect[job])), new
        for s, column in columns.items():
            new = statistics.median([v - job_effect[job] for job, v in column])
            moved, server_effect[s] = max(moved, abs(new - server_effect[s])), new
        centre = statistics.median([server_effect[s] for s in columns])
        for s in columns:
            server_effect[s] -= centre
        if moved < SETTLED:
            break
    return server_effect


def expected_at_unit_speed(per_server: Mapping[str, Sequence[float]], speeds: Mapping[str, float]) -> float | None:
    """A job's expected run time on a server of speed 1.0: the median over its servers of the median time
    there times that server's factor; None without history."""
    scaled = [float(statistics.median(d)) * speeds.get(s, 1.0) for s, d in per_server.items() if d]
    return float(statistics.median(scaled)) if scaled else None
