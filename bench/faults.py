"""A long fault-search campaign: the state machine of tests/faults/machine.py (the same one CI runs) for
many examples, with shrinking, against three emulated servers on this host.

``python -m bench.faults --examples N [--seed S] [--steps K]`` prints the examples run, the faults
injected (counts by kind), the invariants checked (counts) and each distinct violation with the shrunk
example hypothesis found (the steps to replay it). Exit status 1 when a promise was broken.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import traceback

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="ssis-lb-faults-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from hypothesis import HealthCheck, Phase, seed, settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

from tests.faults import injection  # noqa: E402
from tests.faults.machine import ExactlyOnceMachine  # noqa: E402
from tests.faults.world import World  # noqa: E402


def _quiet() -> None:
    """The provider logs every choice and poll; a campaign prints only its own summary."""
    logging.disable(logging.WARNING)
    try:
        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    except Exception:
        pass


def _violations(exc: BaseException) -> list[BaseException]:
    subs = getattr(exc, "exceptions", None)  # an exception group: one per distinct failure
    if isinstance(subs, tuple):
        return [leaf for sub in subs for leaf in _violations(sub)]
    return [exc]


def _report(exc: BaseException) -> str:
    notes = "\n".join(getattr(exc, "__notes__", []))
    head = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return f"{head}\n{notes}".strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=50, help="examples (state machine runs) to try")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    parser.add_argument("--steps", type=int, default=15, help="rules per example (stateful_step_count)")
    parser.add_argument("--no-shrink", action="store_true", help="report the first failing example as found")
    args = parser.parse_args(argv)
    _quiet()
    phases = [Phase.explicit, Phase.generate] + ([] if args.no_shrink else [Phase.shrink])
    config = settings(
        max_examples=args.examples,
        stateful_step_count=args.steps,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
        database=None,
        print_blob=True,
    )
    began = time.monotonic()
    failure: BaseException | None = None
    with World() as world:
        ExactlyOnceMachine.world = world

        def campaign() -> None:
            run_state_machine_as_test(ExactlyOnceMachine, settings=config)

        if args.seed is not None:
            campaign = seed(args.seed)(campaign)
        try:
            campaign()
        except BaseException as exc:  # violations (and a Ctrl-C) end the campaign: report what was found
            failure = exc
        finally:
            ExactlyOnceMachine.world = None
            injection.uninstall()
    stats = ExactlyOnceMachine.stats
    took = time.monotonic() - began
    print(f"\nfault search: {stats.examples} examples run ({stats.steps} steps, {stats.tries} tries) in {took:.0f} s")
    print("faults injected:")
    for kind, count in sorted(stats.faults.items()):
        print(f"  {count:6d}  {kind}")
    print("invariants checked:")
    for kind, count in sorted(stats.checks.items()):
        print(f"  {count:6d}  {kind}")
    print("violations seen while searching (before shrinking):")
    for kind, count in sorted(stats.violations.items()) or [("none", 0)]:
        print(f"  {count:6d}  {kind}")
    for kind, message in sorted(stats.first.items()):
        print(f"  first {kind}: {message[:1500]}")
    if failure is None:
        print("\nno promise broken")
        return 0
    print("\nminimal failing examples:")
    for number, exc in enumerate(_violations(failure), start=1):
        print(f"\n--- {number} ---\n{_report(exc)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
