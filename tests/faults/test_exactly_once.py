"""The fault search in CI: the state machine (tests/faults/machine.py) with fixed seeds, a few short
examples (at most 3 minutes on 2 cores). ``python -m bench.faults`` runs the long campaign.

The regression tests (test_regressions.py) pin each fault the review found on its own."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.faults.machine import ExactlyOnceMachine
from tests.faults.world import World

CI_SETTINGS = settings(
    max_examples=8,
    stateful_step_count=15,
    derandomize=True,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking in CI: bench.faults shrinks
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)


def test_exactly_once_under_faults(world: World) -> None:
    ExactlyOnceMachine.world = world
    try:
        run_state_machine_as_test(ExactlyOnceMachine, settings=CI_SETTINGS)
    finally:
        ExactlyOnceMachine.world = None
