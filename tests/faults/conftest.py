"""Fixtures of the fault search: one emulated pool per module (``World``), calmed between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults import injection
from tests.faults.world import NORMAL_QUERY_TIMEOUT, World


@pytest.fixture(scope="module")
def world_module() -> Iterator[World]:
    injection.install()
    try:
        with World() as world:
            yield world
    finally:
        injection.uninstall()


@pytest.fixture
def world(world_module: World) -> Iterator[World]:
    """The pool with every fault over and the default settings, before and after the test."""
    world_module.set_query_timeout(NORMAL_QUERY_TIMEOUT)
    yield world_module
    world_module.calm()
    world_module.set_query_timeout(NORMAL_QUERY_TIMEOUT)
    for name in world_module.names:
        world_module.define_connection(name)
    world_module.query_timeout.clear()
    world_module.wait_idle(30)
