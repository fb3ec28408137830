"""msdb and SSISDB tables: Microsoft's columns in Microsoft's order, idempotent install, agent_datetime."""

from __future__ import annotations

import datetime as dt

import pytest

from sqlagent_emulator.agent.schema import install_schema
from sqlagent_emulator.agent.sqlfunctions import agent_datetime
from sqlagent_emulator.sql.engine import Engine
from sqlagent_emulator.sql.results import SqlError, SqlType

from .conftest import LOGINS, Server

EXPECTED = {
    "msdb.dbo.sysjobs": (
        "job_id originating_server_id name enabled description start_step_id category_id owner_sid "
        "notify_level_eventlog notify_level_email notify_level_netsend notify_level_page "
        "notify_email_operator_id notify_netsend_operator_id notify_page_operator_id delete_level "
        "date_created date_modified version_number"
    ),
    "msdb.dbo.sysjobsteps": (
        "job_id step_id step_name subsystem command flags additional_parameters cmdexec_success_code "
        "on_success_action on_success_step_id on_fail_action on_fail_step_id server database_name "
        "database_user_name retry_attempts retry_interval os_run_priority output_file_name last_run_outcome "
        "last_run_duration last_run_retries last_run_date last_run_time proxy_id step_uid"
    ),
    "msdb.dbo.sysjobservers": (
        "job_id server_id last_run_outcome last_outcome_message last_run_date last_run_time last_run_duration"
    ),
    "msdb.dbo.sysjobactivity": (
        "session_id job_id run_requested_date run_requested_source queued_date start_execution_date "
        "last_executed_step_id last_executed_step_date stop_execution_date job_history_id "
        "next_scheduled_run_date"
    ),
    "msdb.dbo.sysjobhistory": (
        "instance_id job_id step_id step_name sql_message_id sql_severity message run_status run_date "
        "run_time run_duration operator_id_emailed operator_id_netsent operator_id_paged retries_attempted "
        "server"
    ),
    "msdb.dbo.syssessions": ("session_id agent_start_date"),
    "msdb.dbo.syscategories": ("category_id category_class category_type name"),
    "SSISDB.catalog.executions": (
        "execution_id folder_name project_name package_name reference_id reference_type "
        "environment_folder_name environment_name project_lsn executed_as_sid executed_as_name "
        "use32bitruntime operation_type created_time object_type object_id status start_time end_time "
        "caller_sid caller_name process_id stopped_by_sid stopped_by_name dump_id server_name machine_name "
        "total_physical_memory_kb available_physical_memory_kb total_page_file_kb available_page_file_kb "
        "cpu_count"
    ),
    "SSISDB.catalog.event_messages": (
        "event_message_id operation_id message_time message_type message_source_type message "
        "extended_info_id package_name event_name message_source_name message_source_id subcomponent_name "
        "package_path execution_path threadID message_code event_message_guid"
    ),
    "SSISDB.catalog.folders": "id name description created_by_sid created_by_name created_time",
    "SSISDB.catalog.projects": (
        "project_id folder_id name description project_format_version deployed_by_sid deployed_by_name "
        "last_deployed_time created_time object_version_lsn validation_status last_validation_time"
    ),
    "SSISDB.catalog.packages": (
        "package_id name package_guid description package_format_version version_major version_minor "
        "version_build version_comments version_guid project_id entry_point validation_status last_validation_time"
    ),
}


@pytest.mark.parametrize("table", sorted(EXPECTED))
def test_columns_in_microsofts_order(server: Server, table: str) -> None:
    outcome = server.ok(f"SELECT * FROM {table} WHERE 1 = 0")
    assert [c.name for c in outcome.sets[0].columns] == EXPECTED[table].split()


def test_column_types_that_clients_read(server: Server) -> None:
    types = {c.name: c.sql_type for c in server.ok("SELECT * FROM msdb.dbo.sysjobs WHERE 1 = 0").sets[0].columns}
    assert types["job_id"] is SqlType.UNIQUEIDENTIFIER
    assert types["enabled"] is SqlType.TINYINT
    assert types["owner_sid"] is SqlType.VARBINARY
    assert types["date_created"] is SqlType.DATETIME
    history = server.ok("SELECT instance_id, run_date FROM msdb.dbo.sysjobhistory").sets[0].columns
    assert [c.sql_type for c in history] == [SqlType.INT, SqlType.INT]


def test_history_instance_ids_increase(server: Server) -> None:
    job_id = server.add_job("J")
    for step in (1, 0):
        server.ok(
            "INSERT INTO msdb.dbo.sysjobhistory (job_id, step_id, step_name, sql_message_id, sql_severity, "
            "message, "
            "run_status, run_date, run_time, run_duration, operator_id_emailed, operator_id_netsent, "
            f"operator_id_paged, retries_attempted, server) VALUES ('{job_id}', {step}, N'x', 0, 0, N'm', 1, "
            "20240102, 30405, 1, 0, 0, 0, 0, N'EMU1')"
        )
    assert server.rows("SELECT instance_id FROM msdb.dbo.sysjobhistory ORDER BY instance_id") == [(1,), (2,)]


def test_builtin_categories_are_seeded(server: Server) -> None:
    rows = dict(server.rows("SELECT category_id, name FROM msdb.dbo.syscategories"))
    assert rows[0] == "[Uncategorized (Local)]"
    assert rows[2] == "[Uncategorized (Multi-Server)]"
    assert rows[3] == "Database Maintenance"
    assert rows[98] == rows[99] == "[Uncategorized]"


def test_install_twice_keeps_data_and_does_not_reseed(engine: Engine, server: Server) -> None:
    server.add_job("Kept")
    server.ok("EXEC msdb.dbo.sp_add_category @name = N'Custom'")
    install_schema(engine)
    install_schema(engine)
    assert server.rows("SELECT name FROM msdb.dbo.sysjobs") == [("Kept",)]
    count = server.rows("SELECT COUNT(*) FROM msdb.dbo.syscategories WHERE name = N'Database Maintenance'")
    assert count == [(1,)]
    assert server.rows("SELECT COUNT(*) FROM msdb.dbo.syscategories WHERE name = N'Custom'") == [(1,)]


def test_persisted_state_reopens(tmp_path: object) -> None:
    first = Engine("EMU1", LOGINS.values(), path=str(tmp_path))
    install_schema(first)
    first.execute("INSERT INTO msdb.dbo.syssessions (agent_start_date) VALUES (GETDATE())", "msdb")
    first.close()
    second = Engine("EMU1", LOGINS.values(), path=str(tmp_path))
    try:
        install_schema(second)
        rows = second.execute("SELECT COUNT(*) FROM msdb.dbo.syssessions", "msdb")[0].result_sets[0].rows
        assert rows == [(1,)]
    finally:
        second.close()


def test_agent_datetime_in_sql(server: Server) -> None:
    job_id = server.add_job("J")
    server.ok(
        "INSERT INTO msdb.dbo.sysjobhistory (job_id, step_id, step_name, sql_message_id, sql_severity, "
        "message, "
        "run_status, run_date, run_time, run_duration, operator_id_emailed, operator_id_netsent, "
        "operator_id_paged, "
        f"retries_attempted, server) VALUES ('{job_id}', 0, N'(Job outcome)', 0, 0, N'm', 1, 20240102, "
        "30405, 1, "
        "0, 0, 0, 0, N'EMU1')"
    )
    outcome = server.ok("SELECT msdb.dbo.agent_datetime(run_date, run_time) AS started FROM msdb.dbo.sysjobhistory")
    assert outcome.sets[0].columns[0].sql_type is SqlType.DATETIME
    assert outcome.sets[0].rows == [(dt.datetime(2024, 1, 2, 3, 4, 5),)]


def test_agent_datetime_from_another_database(server: Server) -> None:
    outcome = server.run("SELECT msdb.dbo.agent_datetime(20231231, 235959)", database="master")
    assert outcome.sets[0].rows == [(dt.datetime(2023, 12, 31, 23, 59, 59),)]


def test_agent_datetime_invalid_date_is_a_conversion_error(server: Server) -> None:
    assert server.fails("SELECT msdb.dbo.agent_datetime(0, 0)").number == 241


def test_agent_datetime_function() -> None:
    assert agent_datetime(20240229, 120000) == "2024-02-29 12:00:00.000000"
    assert agent_datetime(None, 1) is None
    with pytest.raises(SqlError):
        agent_datetime(20230229, 0)
