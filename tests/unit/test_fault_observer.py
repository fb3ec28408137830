"""The fault search's record of runs (tests/faults/observer.py) on hand-made msdb rows: a run whose activity row
the next request overwrote between two polls is settled from its outcome row, not left running for ever."""

from __future__ import annotations

import datetime as dt

from tests.faults.invariants import double_runs
from tests.faults.observer import Observer, ServerRecord

JOB = "7E1B0C3A-0000-0000-0000-000000000001"
T0 = dt.datetime(2026, 12, 7, 22, 18, 14, 417000)


def _record() -> ServerRecord:
    record = ServerRecord("F2")
    record.current_session = 1
    record.session_starts = {1: T0 - dt.timedelta(minutes=5)}
    record.job_names = {JOB: "fx job"}
    second = T0.replace(microsecond=0)
    record.history = {
        5: {"job_id": JOB, "status": 1, "start": second, "seconds": 2, "message": "succeeded"},
        6: {"job_id": JOB, "status": 1, "start": second + dt.timedelta(seconds=2), "seconds": 2, "message": "ok"},
    }
    later = T0 + dt.timedelta(seconds=2, milliseconds=453)  # the next run, its row seen with its stop
    record.activity = {
        (JOB, T0): {"session": 1, "stop": None, "history_id": None},  # seen going, then overwritten
        (JOB, later): {"session": 1, "stop": later + dt.timedelta(seconds=2), "history_id": 6},
    }
    return record


def test_a_run_whose_row_was_overwritten_unseen_ends_with_its_outcome_row() -> None:
    record = _record()
    record.activity[(JOB, T0)]["overwritten"] = record.epoch(T0) + 5
    runs = Observer._server_runs(record)
    first = next(r for r in runs if r.local_start == T0)
    assert (first.state, first.history_id, first.status, first.coarse) == ("ended", 5, 1, True)
    assert len(runs) == 2  # its outcome row is not counted again as a run of its own
    assert double_runs(runs, now=record.epoch(T0) + 60) == []


def test_a_run_still_in_its_row_is_running() -> None:
    record = _record()
    del record.activity[(JOB, T0 + dt.timedelta(seconds=2, milliseconds=453))]
    record.history.pop(6)
    runs = Observer._server_runs(record)
    going = next(r for r in runs if r.local_start == T0)
    assert (going.state, going.end) == ("running", None)  # not settled from an outcome row it may not own
