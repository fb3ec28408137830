"""devstack's emulator process, as the main job uses it run after run."""

from __future__ import annotations

import socket
from pathlib import Path

from devstack.emulator import EmulatorProcess

DEMO_SERVERS = Path(__file__).resolve().parents[2] / "demo" / "servers.toml"


def test_a_second_run_on_the_same_log_reads_its_own_ports(tmp_path: Path) -> None:
    log = tmp_path / "emulator.log"
    EmulatorProcess(DEMO_SERVERS, log).start().stop()
    second = EmulatorProcess(DEMO_SERVERS, log).start()
    try:
        assert log.read_text().count("READY name=SQLNODE1") == 2  # the log keeps the first run's lines
        for port in second.ports.values():
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        second.stop()
