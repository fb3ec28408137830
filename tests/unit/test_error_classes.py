"""Driver errors to typed errors by number and SQLSTATE alone: 14262/14234 by the parameter Microsoft's
message names (in any language), login vs permission vs unreachable, no guessing from English text.
docs/errors.md lists these messages; each is asserted here exactly."""

from __future__ import annotations

import pymssql
import pyodbc
import pytest
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider_ssis_lb.exceptions import (
    AgentObjectNotFoundError,
    AgentPermissionError,
    ConnectionNotDefinedError,
    JobNotFoundError,
    JobNotTargetedError,
    LoginFailedError,
    ServerMisconfiguredError,
    SqlAgentError,
    TransientConnectionError,
)
from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from airflow_provider_ssis_lb.sqlerrors import is_transient

ODBC = "[Microsoft][ODBC Driver 18 for SQL Server]"
DBLIB_20018 = (
    b"DB-Lib error message 20018, severity 16:\nGeneral SQL Server error: Check messages from the SQL Server\n"
)
WHERE = "SQL Server Agent job 'child a' on server 'SQL1' (conn_id 'sql1_odbc'): "


def odbc(number: int, text: str, state: str = "42000") -> Exception:
    return pyodbc.ProgrammingError(state, f"[{state}] {ODBC}[SQL Server]{text} ({number}) (SQLExecDirectW)")


@pytest.mark.parametrize(
    ("exc", "kind", "cause"),
    [
        pytest.param(
            odbc(14262, "The specified @step_name ('copy') does not exist."),
            AgentObjectNotFoundError,
            "the job has no step of that name: check step_name against the job's steps "
            "(The specified @step_name ('copy') does not exist.)",
            id="14262-step-name",
        ),
        pytest.param(
            pymssql.OperationalError(
                14262, "La valeur @job_name ('child a') spécifiée n'existe pas.".encode() + DBLIB_20018
            ),
            JobNotFoundError,
            "the job does not exist or this login may not see it (La valeur @job_name ('child a') spécifiée n'existe "
            "pas.): create it (ssis-lb deploy) or fix the name; a login with only SQLAgentUserRole sees only the jobs "
            "it owns",
            id="14262-job-in-french",
        ),
        pytest.param(
            odbc(14262, "The specified @category_name ('Nightly') does not exist."),
            AgentObjectNotFoundError,
            "the job category does not exist on this server (The specified @category_name ('Nightly') does not exist.)",
            id="14262-category",
        ),
        pytest.param(
            odbc(14262, "The specified @schedule_name ('x') does not exist."),
            AgentObjectNotFoundError,
            "the value of @schedule_name is not known on this server (The specified @schedule_name ('x') does not "
            "exist.)",
            id="14262-other-parameter",
        ),
        pytest.param(
            odbc(14234, "The specified '@owner_login_name' is invalid (valid values are returned by sp_helplogins)."),
            AgentObjectNotFoundError,
            "the job owner's login does not exist on this server: create it, or change the owner "
            "(job_defaults.owner in the manifest) (The specified '@owner_login_name' is invalid (valid values are "
            "returned by sp_helplogins).)",
            id="14234-owner",
        ),
        pytest.param(
            odbc(229, "The EXECUTE permission was denied on the object 'sp_start_job', database 'msdb', schema 'dbo'."),
            AgentPermissionError,
            "permission denied (The EXECUTE permission was denied on the object 'sp_start_job', database 'msdb', "
            "schema 'dbo'.): give the login of connection 'sql1_odbc' SQLAgentOperatorRole in msdb "
            "(docs/permissions.md)",
            id="229",
        ),
        pytest.param(
            pyodbc.InterfaceError(
                "28000", f"[28000] {ODBC}[SQL Server]Login failed for user 'op'. (18456) (SQLDriverConnect)"
            ),
            LoginFailedError,
            "login failed (Login failed for user 'op'.): check the login and password of connection 'sql1_odbc'",
            id="18456",
        ),
        pytest.param(
            odbc(4060, 'Cannot open database "msdbx" requested by the login. The login failed.', "08004"),
            LoginFailedError,
            'login failed (Cannot open database "msdbx" requested by the login. The login failed.): the database of '
            "connection 'sql1_odbc' (its schema) does not exist or the login may not open it; use msdb",
            id="4060-not-transient-despite-08004",
        ),
        pytest.param(
            pyodbc.OperationalError("HYT00", f"[HYT00] {ODBC}Login timeout expired (0) (SQLDriverConnect)"),
            TransientConnectionError,
            "connection problem: Login timeout expired (if it persists, check that the "
            "server is up and that connection 'sql1_odbc' names the right host and port)",
            id="HYT00",
        ),
        pytest.param(
            pyodbc.Error("HY024", "[HY024] [unixODBC]Invalid connection string attribute (0) (SQLDriverConnect)"),
            SqlAgentError,
            "Invalid connection string attribute",
            id="no-number-says-connection-not-transient",
        ),
        pytest.param(
            pymssql.OperationalError(20018, DBLIB_20018),
            LoginFailedError,
            "login failed (the server refused the connection at login; pymssql lost the server's message, a pymssql "
            "defect once an earlier connection in this process failed): check the login and password of connection "
            "'sql1_odbc', and its database (schema)",
            id="20018-at-login",
        ),
        pytest.param(
            pyodbc.Error(
                "IM002",
                "[IM002] [unixODBC][Driver Manager]Data source name not found and no default driver specified (0) "
                "(SQLDriverConnect)",
            ),
            ServerMisconfiguredError,
            "no ODBC driver (Data source name not found and no default driver specified): name it in the extra of "
            'connection \'sql1_odbc\' ({"driver": "ODBC Driver 18 for SQL Server"}) and set [providers.odbc] '
            "allow_driver_in_extra = True on every worker and triggerer (docs/connections.md)",
            id="IM002-no-driver",
        ),
        pytest.param(
            odbc(14256, "The specified job 'child a' is not targeted at any server."),
            JobNotTargetedError,
            "the job has no target server here; run sp_add_jobserver for it (The specified job 'child a' is not "
            "targeted at any server.)",
            id="14256-no-target",
        ),
    ],
)
def test_classification(hook: SqlAgentHook, exc: Exception, kind: type[SqlAgentError], cause: str) -> None:
    error = hook._translate(exc, "child a")
    assert type(error) is kind
    assert str(error) == WHERE + cause


def test_an_undefined_connection_says_how_to_define_it(hook: SqlAgentHook) -> None:
    hook._server = hook.conn_id  # get_connection failed: the host is not known
    error = hook._translate(AirflowNotFoundException("The conn_id `sql1_odbc` isn't defined"), "child a")
    assert type(error) is ConnectionNotDefinedError
    assert str(error) == (
        "SQL Server Agent job 'child a' on server 'sql1_odbc': the Airflow connection 'sql1_odbc' is not defined: "
        "add it (Admin > Connections, or the AIRFLOW_CONN_SQL1_ODBC environment variable), or fix the conn id"
    )


@pytest.mark.parametrize(
    "exc",
    [
        pyodbc.Error("HY024", "[HY024] Invalid connection string attribute (0) (SQLDriverConnect)"),
        pyodbc.Error(
            "IM002", "[IM002] Data source name not found and no default driver specified (0) (SQLDriverConnect)"
        ),
        pymssql.InterfaceError("Connection to the database failed for an unknown reason."),
        RuntimeError("connection pool exhausted"),
    ],
)
def test_text_mentioning_connection_is_not_transient(exc: Exception) -> None:
    assert not is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        pyodbc.OperationalError("08S01", "[08S01] Communication link failure (0) (SQLExecDirectW)"),
        pyodbc.OperationalError("08003", "[08003] Connection not open (0) (SQLExecDirectW)"),
        pymssql.OperationalError(
            (20003, b"DB-Lib error message 20003, severity 6:\nAdaptive Server connection timed out\n")
        ),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_transient_by_sqlstate_dblib_number_or_type(exc: Exception) -> None:
    assert is_transient(exc)
