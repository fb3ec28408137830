"""devstack's emulator process, as the main job uses it run after run."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from devstack.emulator import EmulatorProcess, demo_passwords

DEMO_SERVERS = Path(__file__).resolve().parents[2] / "demo" / "servers.toml"


def test_a_second_run_on_the_same_log_reads_its_own_ports(tmp_path: Path) -> None:
    log = tmp_path / "emulator.log"
    env = {**os.environ, **demo_passwords({})}
    EmulatorProcess(DEMO_SERVERS, log, env=env).start().stop()
    second = EmulatorProcess(DEMO_SERVERS, log, env=env).start()
    try:
        assert log.read_text().count("READY name=SQLNODE1") == 2  # the log keeps the first run's lines
        for port in second.ports.values():
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        second.stop()


def test_encrypted_demo_servers_are_reached_with_verified_tls(tmp_path: Path, monkeypatch) -> None:
    """The demo's --encrypt: servers forcing encryption, pymssql connections verifying their certificate."""
    from contextlib import closing

    import pymssql

    from devstack.emulator import demo_passwords, encrypted_config, freetds_trusting, operator_connections
    from sqlagent_emulator.config import load_config

    config = encrypted_config(DEMO_SERVERS, tmp_path / "servers.toml")
    passwords = demo_passwords({})
    configs = load_config(config, passwords)
    assert {c.encryption for c in configs} == {"required"}
    emulator = EmulatorProcess(config, tmp_path / "emulator.log", env={**os.environ, **passwords}).start()
    try:
        assert set(emulator.certs) == set(emulator.ports) and Path(next(iter(emulator.cas.values()))).is_file()
        monkeypatch.setenv("FREETDSCONF", str(freetds_trusting(emulator.cas["SQLNODE1"], tmp_path / "freetds.conf")))
        fields = operator_connections(configs, emulator.ports)["sqlnode1"]
        assert fields["host"] == "localhost" and fields["extra"] == {"encryption": "require"}
        with closing(
            pymssql.connect(
                server=fields["host"],
                port=str(fields["port"]),
                user=fields["login"],
                password=fields["password"],
                **fields["extra"],
            )
        ) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT CONNECTIONPROPERTY('encrypt_option') AS e")
            assert cursor.fetchone() == ("TRUE",)
    finally:
        emulator.stop()
