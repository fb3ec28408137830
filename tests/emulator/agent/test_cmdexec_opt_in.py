"""CmdExec steps are opt-in per server (``allow_cmdexec``): off, a CmdExec step runs nothing and fails as
SQL Server Agent fails a step whose subsystem did not load (Microsoft KB 914171). The emulator listens on
127.0.0.1, where any local user who logs in as sysadmin could otherwise run commands as its owner."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from sqlagent_emulator.config import ConfigError, load_config
from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import FAILED, SUCCEEDED, Client, create_job, history, wait_until_idle
from tests.conftest import SA_PASSWORD, SqlServerTarget, emulator_config

NOT_LOADED = (
    "Unable to start execution of step 1 (reason: The CmdExec subsystem failed to load [see the SQLAGENT.OUT "
    "file for details]; The job has been suspended).  The step failed."
)


def run_cmdexec_job(allow: bool, marker: Path) -> list[tuple[object, ...]]:
    with EmulatorController([emulator_config(name="CMDOPT", allow_cmdexec=allow)]) as controller:
        target = SqlServerTarget("CMDOPT", "127.0.0.1", controller["CMDOPT"].port, "sa", SA_PASSWORD)
        with closing(Client("pymssql", target, "sa", SA_PASSWORD)) as sa:
            name = create_job(sa, [{"subsystem": "CmdExec", "command": f"touch {marker}; echo ran"}])
            sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
            wait_until_idle(sa, name)
            return history(sa, name)


def test_a_cmdexec_step_runs_nothing_unless_the_server_allows_it(tmp_path: Path) -> None:
    step, outcome = run_cmdexec_job(False, tmp_path / "off")
    assert not (tmp_path / "off").exists(), "the command ran although CmdExec is off"
    assert (step[2], step[6]) == (FAILED, NOT_LOADED)
    assert outcome[2] == FAILED
    step, _ = run_cmdexec_job(True, tmp_path / "on")
    assert (tmp_path / "on").exists() and step[2] == SUCCEEDED and "ran" in step[6]


def test_the_config_keeps_cmdexec_off_by_default_and_reads_passwords_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = '[[servers.logins]]\nname = "sa"\npassword_env = "CMDOPT_SA_PASSWORD"\nroles = ["sysadmin"]\n'
    path = tmp_path / "servers.toml"
    path.write_text('[[servers]]\nname = "A"\n' + login + '[[servers]]\nname = "B"\nallow_cmdexec = true\n' + login)
    with pytest.raises(ConfigError, match="password_env names CMDOPT_SA_PASSWORD, which is not set"):
        load_config(path)
    monkeypatch.setenv("CMDOPT_SA_PASSWORD", "Made-per-run-1")
    a, b = load_config(path)
    assert (a.allow_cmdexec, b.allow_cmdexec) == (False, True)
    assert a.logins[0].password == "Made-per-run-1"


def test_the_demo_servers_allow_no_cmdexec_and_commit_no_password() -> None:
    demo = Path(__file__).resolve().parents[3] / "demo" / "servers.toml"
    text = demo.read_text()
    assert "password =" not in text and "allow_cmdexec = true" not in text
