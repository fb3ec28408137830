"""msdb's Agent tables and SSISDB's catalog views, created on an emulated server's engine.

Column names, types and order follow Microsoft's pages (docs/agent-reference.md, 1 and 8):

- https://learn.microsoft.com/en-us/sql/relational-databases/system-tables/dbo-sysjobs-transact-sql
  (and the sysjobsteps, sysjobservers, sysjobactivity, sysjobhistory, syssessions and syscategories pages);
- https://learn.microsoft.com/en-us/sql/integration-services/system-views/catalog-executions-ssisdb-database
- https://learn.microsoft.com/en-us/sql/integration-services/system-views/catalog-event-messages
- .../catalog-folders-ssisdb-database, .../catalog-projects-ssisdb-database, .../catalog-packages-ssisdb-database
- the proxy tables sysproxies, sysproxysubsystem, sysproxylogin (proxies.py)
- the msdb package store, sysssispackages and sysssispackagefolders (packagestore.py)

SSISDB's data lives in ``internal.*`` tables behind the filtered ``catalog.*`` views (catalogviews.py).

``install_schema`` is idempotent: a table that already exists (a persisted state directory reopened) is
left alone, and the built-in job categories are only seeded into a table it has just created.

Where the SQL layer cannot store a type exactly, the nearest type is used (noted per table):
``ntext`` becomes ``nvarchar(max)`` (the layer would type ``ntext`` as varchar), and IDENTITY columns are
SQLite integer keys, which the layer reports as ``int`` even when Microsoft's type is ``bigint``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .catalogviews import install_views, migrate_legacy_tables
from .sqlfunctions import register_agent_functions

if TYPE_CHECKING:
    from ..sql.engine import Engine

SYSNAME = "NVARCHAR(128)"

# (database, schema.table, column definitions in Microsoft's order)
TABLES: tuple[tuple[str, str, str], ...] = (
    (
        "msdb",
        "dbo.sysjobs",
        f"""job_id UNIQUEIDENTIFIER NOT NULL PRIMARY KEY,
        originating_server_id INT NOT NULL,
        name {SYSNAME} NOT NULL,
        enabled TINYINT NOT NULL,
        description NVARCHAR(512) NULL,
        start_step_id INT NOT NULL,
        category_id INT NOT NULL,
        owner_sid VARBINARY(85) NOT NULL,
        notify_level_eventlog INT NOT NULL,
        notify_level_email INT NOT NULL,
        notify_level_netsend INT NOT NULL,
        notify_level_page INT NOT NULL,
        notify_email_operator_id INT NOT NULL,
        notify_netsend_operator_id INT NOT NULL,
        notify_page_operator_id INT NOT NULL,
        delete_level INT NOT NULL,
        date_created DATETIME NOT NULL,
        date_modified DATETIME NOT NULL,
        version_number INT NOT NULL""",
    ),
    (
        "msdb",
        "dbo.sysjobsteps",
        # additional_parameters is ntext in msdb; nvarchar(max) here (see the module docstring). No key on
        # (job_id, step_id): renumbering steps shifts ids in one UPDATE, which SQLite checks row by row.
        f"""job_id UNIQUEIDENTIFIER NOT NULL,
        step_id INT NOT NULL,
        step_name {SYSNAME} NOT NULL,
        subsystem NVARCHAR(40) NOT NULL,
        command NVARCHAR(MAX) NULL,
        flags INT NOT NULL,
        additional_parameters NVARCHAR(MAX) NULL,
        cmdexec_success_code INT NOT NULL,
        on_success_action TINYINT NOT NULL,
        on_success_step_id INT NOT NULL,
        on_fail_action TINYINT NOT NULL,
        on_fail_step_id INT NOT NULL,
        server {SYSNAME} NULL,
        database_name {SYSNAME} NULL,
        database_user_name {SYSNAME} NULL,
        retry_attempts INT NOT NULL,
        retry_interval INT NOT NULL,
        os_run_priority INT NOT NULL,
        output_file_name NVARCHAR(200) NULL,
        last_run_outcome INT NOT NULL,
        last_run_duration INT NOT NULL,
        last_run_retries INT NOT NULL,
        last_run_date INT NOT NULL,
        last_run_time INT NOT NULL,
        proxy_id INT NULL,
        step_uid UNIQUEIDENTIFIER NULL""",
    ),
    (
        "msdb",
        "dbo.sysjobservers",
        """job_id UNIQUEIDENTIFIER NOT NULL,
        server_id INT NOT NULL,
        last_run_outcome TINYINT NOT NULL,
        last_outcome_message NVARCHAR(1024) NULL,
        last_run_date INT NOT NULL,
        last_run_time INT NOT NULL,
        last_run_duration INT NOT NULL""",
    ),
    (
        "msdb",
        "dbo.sysjobactivity",
        f"""session_id INT NOT NULL,
        job_id UNIQUEIDENTIFIER NOT NULL,
        run_requested_date DATETIME NULL,
        run_requested_source {SYSNAME} NULL,
        queued_date DATETIME NULL,
        start_execution_date DATETIME NULL,
        last_executed_step_id INT NULL,
        last_executed_step_date DATETIME NULL,
        stop_execution_date DATETIME NULL,
        job_history_id INT NULL,
        next_scheduled_run_date DATETIME NULL""",
    ),
    (
        "msdb",
        "dbo.sysjobhistory",
        # instance_id is INT IDENTITY in msdb: an ever-increasing SQLite integer key here.
        f"""instance_id INT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        job_id UNIQUEIDENTIFIER NOT NULL,
        step_id INT NOT NULL,
        step_name {SYSNAME} NOT NULL,
        sql_message_id INT NOT NULL,
        sql_severity INT NOT NULL,
        message NVARCHAR(4000) NULL,
        run_status INT NOT NULL,
        run_date INT NOT NULL,
        run_time INT NOT NULL,
        run_duration INT NOT NULL,
        operator_id_emailed INT NOT NULL,
        operator_id_netsent INT NOT NULL,
        operator_id_paged INT NOT NULL,
        retries_attempted INT NOT NULL,
        server {SYSNAME} NOT NULL""",
    ),
    (
        "msdb",
        "dbo.syssessions",
        # session_id is an IDENTITY; the Agent may also insert explicit, increasing values.
        """session_id INT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        agent_start_date DATETIME NOT NULL""",
    ),
    (
        "msdb",
        "dbo.syscategories",
        f"""category_id INT NOT NULL PRIMARY KEY,
        category_class INT NOT NULL,
        category_type TINYINT NOT NULL,
        name {SYSNAME} NOT NULL""",
    ),
    (
        "msdb",
        "dbo.sysproxies",
        # RD/system-tables/dbo-sysproxies-transact-sql (sysadmin only, see permissions.py).
        f"""proxy_id INT NOT NULL PRIMARY KEY,
        name {SYSNAME} NOT NULL,
        credential_id INT NOT NULL,
        enabled TINYINT NOT NULL,
        description NVARCHAR(512) NULL,
        user_sid VARBINARY(85) NULL,
        credential_date_created DATETIME NULL""",
    ),
    (
        "msdb",
        "dbo.sysproxysubsystem",  # RD/system-tables/dbo-sysproxysubsystem-transact-sql
        """subsystem_id INT NOT NULL,
        proxy_id INT NOT NULL""",
    ),
    (
        "msdb",
        "dbo.sysproxylogin",
        # RD/system-tables/dbo-sysproxylogin-transact-sql: flags 0 login, 1 fixed server role, 2 msdb role.
        """proxy_id INT NOT NULL,
        sid VARBINARY(85) NULL,
        flags INT NOT NULL""",
    ),
    (
        "msdb",
        "dbo.sysssispackagefolders",
        # RD/system-tables/dbo-sysssispackagefolders-transact-sql (the msdb package store, packagestore.py)
        f"""folderid UNIQUEIDENTIFIER NOT NULL PRIMARY KEY,
        parentfolderid UNIQUEIDENTIFIER NULL,
        foldername {SYSNAME} NOT NULL""",
    ),
    (
        "msdb",
        "dbo.sysssispackages",
        # RD/system-tables/dbo-sysssispackages-transact-sql; packagedata is image there, varbinary(max) here
        f"""name {SYSNAME} NOT NULL,
        id UNIQUEIDENTIFIER NOT NULL,
        description NVARCHAR(1024) NULL,
        createdate DATETIME NOT NULL,
        folderid UNIQUEIDENTIFIER NOT NULL,
        ownersid VARBINARY(85) NOT NULL,
        packagedata VARBINARY(MAX) NULL,
        packageformat INT NOT NULL,
        packagetype SMALLINT NOT NULL,
        vermajor INT NOT NULL,
        verminor INT NOT NULL,
        verbuild INT NOT NULL,
        vercomments NVARCHAR(1024) NULL,
        verid UNIQUEIDENTIFIER NOT NULL,
        isencrypted BIT NOT NULL,
        readrolesid VARBINARY(85) NULL,
        writerolesid VARBINARY(85) NULL""",
    ),
    (
        "master",
        "sys.credentials",
        # A catalog view on SQL Server (RD/system-catalog-views/sys-credentials-transact-sql); filled by
        # sp_add_proxy here, as CREATE CREDENTIAL is not emulated (proxies.py).
        f"""credential_id INT NOT NULL PRIMARY KEY,
        name {SYSNAME} NOT NULL,
        credential_identity NVARCHAR(4000) NULL,
        create_date DATETIME NOT NULL,
        modify_date DATETIME NOT NULL,
        target_type NVARCHAR(100) NULL,
        target_id INT NULL""",
    ),
    (
        "SSISDB",
        "internal.executions",
        # Behind the catalog.executions view (catalogviews.py), with the view's columns in the view's order
        # (which also has operation_type and created_time, from catalog.operations, not listed on the Learn
        # page). execution_id is bigint in SSISDB; an integer key (reported as int) here.
        """execution_id BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        folder_name NVARCHAR(128) NULL,
        project_name NVARCHAR(128) NULL,
        package_name NVARCHAR(260) NULL,
        reference_id BIGINT NULL,
        reference_type CHAR(1) NULL,
        environment_folder_name NVARCHAR(128) NULL,
        environment_name NVARCHAR(128) NULL,
        project_lsn BIGINT NULL,
        executed_as_sid VARBINARY(85) NULL,
        executed_as_name NVARCHAR(128) NULL,
        use32bitruntime BIT NULL,
        operation_type SMALLINT NULL,
        created_time DATETIMEOFFSET NULL,
        object_type SMALLINT NULL,
        object_id BIGINT NULL,
        status INT NULL,
        start_time DATETIMEOFFSET NULL,
        end_time DATETIMEOFFSET NULL,
        caller_sid VARBINARY(85) NULL,
        caller_name NVARCHAR(128) NULL,
        process_id INT NULL,
        stopped_by_sid VARBINARY(85) NULL,
        stopped_by_name NVARCHAR(128) NULL,
        dump_id UNIQUEIDENTIFIER NULL,
        server_name NVARCHAR(128) NULL,
        machine_name NVARCHAR(128) NULL,
        total_physical_memory_kb BIGINT NULL,
        available_physical_memory_kb BIGINT NULL,
        total_page_file_kb BIGINT NULL,
        available_page_file_kb BIGINT NULL,
        cpu_count INT NULL""",
    ),
    (
        "SSISDB",
        "internal.event_messages",
        # Behind catalog.event_messages; event_message_guid is the newer builds' last column.
        """event_message_id BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        operation_id BIGINT NULL,
        message_time DATETIMEOFFSET NULL,
        message_type SMALLINT NULL,
        message_source_type SMALLINT NULL,
        message NVARCHAR(MAX) NULL,
        extended_info_id BIGINT NULL,
        package_name NVARCHAR(260) NULL,
        event_name NVARCHAR(1024) NULL,
        message_source_name NVARCHAR(4000) NULL,
        message_source_id NVARCHAR(38) NULL,
        subcomponent_name NVARCHAR(4000) NULL,
        package_path NVARCHAR(MAX) NULL,
        execution_path NVARCHAR(MAX) NULL,
        threadID INT NULL,
        message_code INT NULL,
        event_message_guid UNIQUEIDENTIFIER NULL""",
    ),
    (
        "SSISDB",
        "internal.operation_messages",
        # Behind catalog.operation_messages (columns of
        # https://learn.microsoft.com/en-us/sql/integration-services/system-views/catalog-operation-messages-ssisdb-database).
        """operation_message_id BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        operation_id BIGINT NULL,
        message_time DATETIMEOFFSET NULL,
        message_type SMALLINT NULL,
        message_source_type SMALLINT NULL,
        message NVARCHAR(MAX) NULL,
        extended_info_id BIGINT NULL""",
    ),
    (
        "SSISDB",
        "internal.folders",
        # Behind catalog.folders (catalogviews.py), whose key column is ``id``, not ``folder_id``
        # (https://learn.microsoft.com/en-us/sql/integration-services/system-views/catalog-folders-ssisdb-database).
        """id BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        name NVARCHAR(128) NOT NULL,
        description NVARCHAR(1024) NULL,
        created_by_sid VARBINARY(85) NULL,
        created_by_name NVARCHAR(128) NULL,
        created_time DATETIMEOFFSET NULL""",
    ),
    (
        "SSISDB",
        "internal.projects",
        # Behind catalog.projects (.../catalog-projects-ssisdb-database).
        """project_id BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        folder_id BIGINT NOT NULL,
        name NVARCHAR(128) NOT NULL,
        description NVARCHAR(1024) NULL,
        project_format_version INT NULL,
        deployed_by_sid VARBINARY(85) NULL,
        deployed_by_name NVARCHAR(128) NULL,
        last_deployed_time DATETIMEOFFSET NULL,
        created_time DATETIMEOFFSET NULL,
        object_version_lsn BIGINT NULL,
        validation_status CHAR(1) NULL,
        last_validation_time DATETIMEOFFSET NULL""",
    ),
    (
        "SSISDB",
        "internal.packages",
        # Behind catalog.packages (.../catalog-packages-ssisdb-database); name is nvarchar(256) there.
        """package_id BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
        name NVARCHAR(256) NOT NULL,
        package_guid UNIQUEIDENTIFIER NULL,
        description NVARCHAR(1024) NULL,
        package_format_version INT NULL,
        version_major INT NULL,
        version_minor INT NULL,
        version_build INT NULL,
        version_comments NVARCHAR(1024) NULL,
        version_guid UNIQUEIDENTIFIER NULL,
        project_id BIGINT NOT NULL,
        entry_point BIT NULL,
        validation_status CHAR(1) NULL,
        last_validation_time DATETIMEOFFSET NULL""",
    ),
)

# The stock msdb rows: (category_id, category_class, category_type, name).
# Class 1 job, 2 alert, 3 operator; type 1 local, 2 multiserver, 3 none. The ids are not documented
# [unconfirmed]; 0 and 2 are what sp_verify_job uses for '[DEFAULT]', and 1 is the 'Jobs from MSX'
# category that only the Agent may add jobs to (error 14267).
BUILTIN_CATEGORIES: tuple[tuple[int, int, int, str], ...] = (
    (0, 1, 1, "[Uncategorized (Local)]"),
    (1, 1, 2, "Jobs from MSX"),
    (2, 1, 2, "[Uncategorized (Multi-Server)]"),
    (3, 1, 1, "Database Maintenance"),
    (4, 1, 1, "Web Assistant"),
    (5, 1, 1, "Full-Text"),
    (6, 1, 1, "Log Shipping"),
    (7, 1, 1, "Database Engine Tuning Advisor"),
    (8, 1, 1, "Data Collector"),
    (10, 1, 1, "REPL-Distribution"),
    (11, 1, 1, "REPL-Distribution Cleanup"),
    (12, 1, 1, "REPL-History Cleanup"),
    (13, 1, 1, "REPL-LogReader"),
    (14, 1, 1, "REPL-Merge"),
    (15, 1, 1, "REPL-Snapshot"),
    (16, 1, 1, "REPL-Checkup"),
    (17, 1, 1, "REPL-Subscription Cleanup"),
    (18, 1, 1, "REPL-Alert Response"),
    (19, 1, 1, "REPL-QueueReader"),
    (20, 2, 3, "Replication"),
    (98, 2, 3, "[Uncategorized]"),
    (99, 3, 3, "[Uncategorized]"),
)
FIRST_USER_CATEGORY_ID = 100


def existing_tables(engine: Engine, database: str) -> set[str]:
    """Physical names (``dbo.sysjobs``) of the tables in one database, lower case."""
    return {name.lower() for name in engine.catalog.tables(database)}


def install_schema(engine: Engine) -> None:
    """Create whatever Agent and SSIS catalog tables and views are missing, and register agent_datetime."""
    migrate_legacy_tables(engine)
    created: set[str] = set()
    for database, table, columns in TABLES:
        if table.lower() in existing_tables(engine, database):
            continue
        engine.execute(f"CREATE TABLE {database}.{table} ({columns})", database)
        created.add(table)
    if "dbo.syscategories" in created:
        _seed_categories(engine)
    install_views(engine)
    register_agent_functions(engine)


def _seed_categories(engine: Engine) -> None:
    values = ", ".join(
        f"({cid}, {cls}, {kind}, N'{name.replace(chr(39), chr(39) * 2)}')"
        for cid, cls, kind, name in BUILTIN_CATEGORIES
    )
    engine.execute(
        f"INSERT INTO msdb.dbo.syscategories (category_id, category_class, category_type, name) VALUES {values}",
        "msdb",
    )
