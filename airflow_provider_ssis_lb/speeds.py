"""How fast each server runs the same packages, learned from Agent history (no I/O here).

A server's speed factor says how much work it does per second relative to the median server: a job
of ``p`` seconds at speed 1.0 takes ``p / factor`` seconds there. It is learned only from jobs that ran on
more than one server, so a server that happens to get the long packages is not called slow:

1. each (job, server) cell is the median of that job's recent successful run times there (one slow run
   under a noisy neighbour does not move it);
2. a server's factor is the median, over the jobs it shares with other servers, of how much faster the
   job ran there than on the job's other servers (each of those corrected by its own factor, so the
   estimates are repeated until they settle); a job that behaves oddly on one server is one vote of many,
   and the factors are centred so that the median of the servers that compared is 1.0;
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
ROUNDS = 60  # rounds at most; the estimates settle in a few dozen
SETTLED = 1e-3  # log units: stop once no factor moves by more than 0.1 %

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
    pool = set(names)
    logs = {job: {s: math.log(m) for s, m in row.items() if s in pool} for job, row in cell_medians(history).items()}
    logs = {job: row for job, row in logs.items() if len(row) >= 2}  # only jobs seen on two servers compare
    effect = _server_effects(logs, names)
    evidence = dict.fromkeys(names, 0)
    for row in logs.values():
        for s in row:
            evidence[s] += 1
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


def _server_effects(logs: Mapping[str, Mapping[str, float]], servers: Collection[str]) -> dict[str, float]:
    """Each server's log slowness, centred on the median server: the median over the jobs it shares of
    ``log(time here) - mean of log(time there, corrected by that server's slowness)`` over the job's other
    servers, repeated until it settles (every server's estimate leans on the others' current ones).

    Leaving the server's own time out of the reference is what makes this exact on exact data: with the
    server in its own reference (Tukey's median polish), a table as sparse as a pool's history settles on
    factors squeezed towards 1.0 (2.3 instead of 2.5 between the slowest and the fastest of 20 servers)."""
    effect = dict.fromkeys(servers, 0.0)
    rows = [list(row.items()) for row in logs.values()]
    cells: dict[str, list[tuple[int, float]]] = {}  # server -> (row, log time) of the jobs it ran
    for index, row in enumerate(rows):
        for s, v in row:
            cells.setdefault(s, []).append((index, v))
    if not cells:
        return effect
    for _ in range(ROUNDS):
        corrected = [sum(v - effect[s] for s, v in row) for row in rows]  # each job's corrected total
        proposed = {
            s: _median([v - (corrected[i] - (v - effect[s])) / (len(rows[i]) - 1) for i, v in column])
            for s, column in cells.items()
        }
        centre = _median(list(proposed.values()))
        # halfway from the old estimate to the new one: with all servers updated at once, two servers
        # would otherwise swap their estimates for ever
        new = {s: (effect[s] + v - centre) / 2 for s, v in proposed.items()}
        moved = max(abs(new[s] - effect[s]) for s in cells)
        effect.update(new)
        if moved < SETTLED:
            break
    return effect


def _median(values: list[float]) -> float:
    values.sort()
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def expected_at_unit_speed(per_server: Mapping[str, Sequence[float]], speeds: Mapping[str, float]) -> float | None:
    """A job's expected run time on a server of speed 1.0: the median over its servers of the median time
    there times that server's factor; None without history."""
    scaled = [float(statistics.median(d)) * speeds.get(s, 1.0) for s, d in per_server.items() if d]
    return float(statistics.median(scaled)) if scaled else None
