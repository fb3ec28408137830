"""Every seam the fault search uses in the provider, in one place (names may move: adapt them here).

- deaths of a worker during a start, by a ``WorkerDied`` (a BaseException, as a killed process is not an
  error the operator could catch) raised from wrappers around ``RunLedger.save`` (phases 'starting' and
  'started') and ``AgentSession.start`` (sp_start_job);
- a record of every sp_start_job a try made (the lineage's starts, for the invariants);
- the task instance state a deferred trigger reads on ``on_kill`` (``user_action._read_state``);
- the start trigger's XCom (``StartRecords``): each try's own dict (``XCOMS``, a new one per try, as Airflow
  clears XCom when a try starts), with the deaths of its triggerer around the record of a start
  ('starting', 'started'), and its admission threads armed as the try that submitted them;
- exceptions delivered into a worker thread (``raise_in``): SIGTERM's kill, execution_timeout's alarm.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import threading
from dataclasses import dataclass
from typing import Any

from airflow_provider_ssis_lb import start_record, user_action
from airflow_provider_ssis_lb.hooks.sql_agent import AgentSession
from airflow_provider_ssis_lb.ledger import RunLedger
from airflow_provider_ssis_lb.runs import JobRun
from airflow_provider_ssis_lb.triggers import sql_agent_start

BEFORE_INTENT = "before_intent"  # the worker dies before the intent record is saved
AFTER_INTENT = "after_intent"  # ... after the intent, before sp_start_job
AFTER_START = "after_start"  # ... right after sp_start_job returned
BEFORE_STARTED = "before_started"  # ... before the handle (phase 'started') is saved
DEATH_POINTS = (BEFORE_INTENT, AFTER_INTENT, AFTER_START, BEFORE_STARTED)


class WorkerDied(BaseException):
    """The worker process running the try is gone (OOM kill, node lost) at an injected point."""


class TaskKilled(BaseException):
    """SIGTERM reached the task (a user marked it failed): Airflow ran on_kill and ends the process."""


@dataclass
class Arming:
    """One try's: where it dies (consumed once, by whichever of its threads gets there first) and where its
    sp_start_job handles are recorded."""

    die_at: str | None = None
    starts: list[dict[str, Any]] | None = None


class _Current(threading.local):
    arming: Arming = Arming()


current = _Current()
XCOMS: dict[tuple[str, str, str, int], dict[str, Any]] = {}  # a task's XCom (TaskKey fields) -> its try's dict
_installed = False
_install_lock = threading.Lock()
_originals: dict[tuple[Any, str], Any] = {}
# CPython (3.11) gives a thread being started a thread state tagged with its *parent's* id until it runs,
# and PyThreadState_SetAsyncExc hits the first state with the id: an exception meant for a worker would
# land in the thread it is starting (which then never signals it started). Starts and deliveries are
# serialized so a delivery never falls into that window.
_starting = threading.RLock()


def arm(die_at: str | None, starts: list[dict[str, Any]]) -> None:
    """For the calling thread (one try): die at ``die_at`` (or not), and record its starts in ``starts``."""
    current.arming = Arming(die_at, starts)


def disarm() -> None:
    """The try's death is spent elsewhere (its triggerer died instead): none left for this thread."""
    current.arming.die_at = None


def _die(point: str) -> None:
    if current.arming.die_at == point:
        current.arming.die_at = None
        raise WorkerDied(point)


class _ArmedExecutor(concurrent.futures.ThreadPoolExecutor):
    """The start trigger's admission threads, each armed as the try whose trigger submitted the call."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        arming = current.arming

        def armed() -> Any:
            current.arming = arming
            return fn(*args, **kwargs)

        return super().submit(armed)


def _xcom(records: start_record.StartRecords) -> dict[str, Any]:
    task = records.task
    return XCOMS.setdefault((task.dag_id, task.run_id, task.task_id, task.map_index), {})


def _read_record(records: start_record.StartRecords) -> start_record.StartRecord | None:
    value = _xcom(records).get(start_record.XCOM_START_KEY)
    if not isinstance(value, dict) or value.get("token") != records.token:
        return None
    return start_record.StartRecord(records.token, value["phase"], JobRun.from_dict(value["run"]))


def _write_record(records: start_record.StartRecords, phase: str, run: JobRun) -> None:
    _die(BEFORE_INTENT if phase == "starting" else BEFORE_STARTED)
    _xcom(records)[start_record.XCOM_START_KEY] = {"token": records.token, "phase": phase, "run": run.to_dict()}
    if phase == "starting":
        _die(AFTER_INTENT)


def _publish_run(records: start_record.StartRecords, key: str, run: JobRun) -> None:
    _xcom(records)[key] = run.to_dict()


def install() -> None:
    """Wrap the seams once per process; threads that did not ``arm`` are unaffected."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        save, start = RunLedger.save, AgentSession.start

        @functools.wraps(save)
        def saving(self: RunLedger, phase: str, run: Any, **kwargs: Any) -> None:
            _die(BEFORE_INTENT if phase == "starting" else BEFORE_STARTED if phase == "started" else "")
            save(self, phase, run, **kwargs)  # type: ignore[arg-type]
            if phase == "starting":
                _die(AFTER_INTENT)

        @functools.wraps(start)
        def starting(self: AgentSession, *args: Any, **kwargs: Any) -> Any:
            run = start(self, *args, **kwargs)
            if current.arming.starts is not None:
                current.arming.starts.append(run.to_dict())
            _die(AFTER_START)
            return run

        thread_start = threading.Thread.start
        _originals.update(
            {
                (threading.Thread, "start"): thread_start,
                (RunLedger, "save"): save,
                (AgentSession, "start"): start,
                (user_action, "_read_state"): user_action._read_state,
                (start_record.StartRecords, "read"): start_record.StartRecords.read,
                (start_record.StartRecords, "write"): start_record.StartRecords.write,
                (start_record.StartRecords, "publish_run"): start_record.StartRecords.publish_run,
                (sql_agent_start, "_ADMISSIONS"): sql_agent_start._ADMISSIONS,
            }
        )

        @functools.wraps(thread_start)
        def start_thread(self: threading.Thread) -> None:
            with _starting:
                thread_start(self)

        threading.Thread.start = start_thread  # type: ignore[method-assign]
        RunLedger.save = saving  # type: ignore[method-assign]
        AgentSession.start = starting  # type: ignore[method-assign]
        user_action._read_state = _read_state  # type: ignore[attr-defined]
        start_record.StartRecords.read = _read_record  # type: ignore[method-assign]
        start_record.StartRecords.write = _write_record  # type: ignore[method-assign,assignment]
        start_record.StartRecords.publish_run = _publish_run  # type: ignore[method-assign]
        sql_agent_start._ADMISSIONS = _ArmedExecutor(max_workers=16, thread_name_prefix="fx-admission")


def uninstall() -> None:
    """Put the provider's (and threading's) own functions back, for the tests that run after."""
    global _installed
    with _install_lock:
        for (owner, name), original in _originals.items():
            setattr(owner, name, original)
        _originals.clear()
        _installed = False


def _read_state(ti: Any) -> str | None:
    """The fake task instance's state, as the Task SDK would report it to the triggerer."""
    return getattr(ti, "state", None)


def raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> bool:
    """Deliver ``exc_type`` into ``thread`` at its next Python instruction (a signal handler's raise)."""
    with _starting:
        if thread.ident is None or not thread.is_alive():
            return False
        done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))
        return bool(done == 1)
