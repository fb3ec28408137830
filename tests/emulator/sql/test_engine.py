"""Engine lifetime: logins, independent servers, persistence."""

from __future__ import annotations

from sqlagent_emulator.sql.engine import Engine

from .conftest import OPERATOR, SA, error, rows, run


def test_authenticate(engine):
    assert engine.authenticate("SA", "pw") == SA
    assert engine.authenticate("operator", "op") == OPERATOR
    assert engine.authenticate("sa", "wrong") is None
    assert engine.authenticate("nobody", "pw") is None


def test_open_session_in_database(engine):
    session = engine.open_session(OPERATOR, 55, "msdb")
    assert session.database == "msdb" and session.login.name == "operator"
    assert rows(session, "SELECT SUSER_SNAME(), DB_NAME()") == [("operator", "msdb")]


def test_two_engines_have_independent_state():
    one, two = Engine("ONE", [SA]), Engine("TWO", [SA])
    try:
        a, b = one.open_session(SA, 51), two.open_session(SA, 51)
        run(a, "CREATE TABLE msdb.dbo.shared (v INT); INSERT INTO msdb.dbo.shared VALUES (1)")
        assert error(b, "SELECT * FROM msdb.dbo.shared").number == 208
        assert rows(b, "SELECT @@SERVERNAME") == [("TWO",)]
        one.procedures.add("master.dbo.sp_only_one", (), lambda ctx: 0)
        assert not a.call_procedure("sp_only_one", []).failed
        assert b.call_procedure("sp_only_one", []).failed
    finally:
        one.close()
        two.close()


def test_persistence_survives_close_and_reopen(tmp_path):
    first = Engine("P", [SA], path=str(tmp_path))
    session = first.open_session(SA, 51)
    run(session, "CREATE TABLE msdb.dbo.kept (v NVARCHAR(10), at DATETIME DEFAULT GETDATE())")
    run(session, "INSERT INTO msdb.dbo.kept (v) VALUES ('stay')")
    run(session, "CREATE TABLE #gone (v INT)")
    first.close()
    assert (tmp_path / "msdb.sqlite").exists()
    second = Engine("P", [SA], path=str(tmp_path))
    try:
        again = second.open_session(SA, 51)
        assert rows(again, "SELECT v FROM msdb.dbo.kept") == [("stay",)]
        run(again, "INSERT INTO msdb.dbo.kept (v) VALUES ('more')")  # DEFAULT GETDATE() still works
        assert rows(again, "SELECT COUNT(*) FROM msdb.dbo.kept WHERE at IS NOT NULL") == [(2,)]
        assert error(again, "SELECT * FROM #gone").number == 208
    finally:
        second.close()
