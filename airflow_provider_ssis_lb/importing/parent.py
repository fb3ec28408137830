"""A parent package's records (``dtsx.py``) into manifest children, DAG tasks and a report (pure, no files).

- Execute SQL Server Agent Job task -> a pooled child (the job's name; the task's server as its preferred
  server). Which package the job runs is not in the parent: ``job_packages`` says it.
- Execute Package task -> a child whose Agent job runs that package: a project reference by package name
  (``catalog_path``), a file connection by path (``file_path``), a SQL Server connection by its msdb path
  (``msdb_path``). Parameter bindings to constant parent variables become the child's ``/Par`` values.
- Execute SQL task on a SQL Server connection given in ``conn_map`` -> ``SQLExecuteQueryOperator``.
- Sequence container -> TaskGroup. Anything else -> a placeholder task that fails saying what to do.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from .dtsx import Executable, Package, Variable
from .graph import ControlFlow

Status = Literal["converted", "flagged", "not converted", "left out"]
Location = Literal["catalog_path", "file_path", "msdb_path"]
SQL_SERVER_OLEDB = re.compile(r"provider\s*=\s*(sqlncli|msoledbsql|sqloledb)", re.IGNORECASE)
SQL_SERVER_ADONET = "system.data.sqlclient.sqlconnection"
# DTS:DataType (a Variant type code) -> the type dtexec's /Par names; text needs none
PAR_TYPES = {
    2: "Int16",
    3: "Int32",
    4: "Single",
    5: "Double",
    6: "Decimal",
    7: "DateTime",
    11: "Boolean",
    16: "SByte",
    17: "Byte",
    18: "UInt16",
    19: "UInt32",
    20: "Int64",
    21: "UInt64",
}
NOT_CONVERTED = {
    "data_flow": (
        "a Data Flow runs inside the SSIS engine",
        "move it into a package of its own, deploy that to the catalog and add it to the manifest as a child",
    ),
    "script": (
        "a Script task is .NET code that only SSIS runs",
        "rewrite it as a Python task, or move it into a child package",
    ),
    "for_loop": (
        "a For Loop repeats its tasks at run time; a DAG's shape is fixed when it is parsed",
        "move the loop into a child package, or rebuild it with dynamic task mapping (.expand)",
    ),
    "foreach_loop": (
        "a Foreach Loop repeats its tasks at run time; a DAG's shape is fixed when it is parsed",
        "move the loop into a child package, or rebuild it with dynamic task mapping (.expand)",
    ),
    "execute_sql": (
        "no Airflow connection was given for its connection manager",
        "pass --conn-map 'CONNECTION_MANAGER=conn_id' (a SQL Server connection) or rewrite it",
    ),
    "other": ("this task type has no equivalent in the provider", "rewrite it with an Airflow operator"),
}


class ImportProblem(ValueError):
    """The package cannot be imported as asked; ``problems`` names each task and what is missing."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: cannot import:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class ImportOptions:
    servers: tuple[tuple[str, int], ...] = ()  # the pool (conn_id, capacity); default: the tasks' servers
    server_map: dict[str, str] = field(default_factory=dict)  # SQL Server name -> conn_id
    conn_map: dict[str, str] = field(default_factory=dict)  # connection manager name -> conn_id
    catalog_folder: str | None = None
    project: str | None = None
    job_packages: dict[str, str] = field(default_factory=dict)  # Agent job name -> package location
    dag_id: str | None = None
    name: str | None = None  # the manifest's name


@dataclass
class Child:
    name: str
    location_key: Location
    location: str
    preferred_server: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def job_name(self) -> str:
        return self.name


@dataclass
class Task:
    key: str  # the SSIS executable's key (refId or DTSID path)
    task_id: str  # within its group
    group: str | None  # key of the Sequence container it sits in (None: top level)
    kind: Literal["child", "sql", "placeholder", "empty"]
    ssis: str  # display path
    ssis_type: str
    child: str | None = None
    conn_id: str | None = None
    sql: str | None = None
    reason: str = ""
    what_to_do: str = ""
    trigger_rule: str = "all_success"
    upstream: set[str] = field(default_factory=set)


@dataclass
class Group:
    key: str
    group_id: str
    parent: str | None
    ssis: str


@dataclass(frozen=True)
class ReportItem:
    status: Status
    ssis: str
    ssis_type: str
    became: str
    note: str


@dataclass
class ParentImport:
    package: Package
    name: str
    dag_id: str
    servers: tuple[tuple[str, int], ...]
    children: list[Child]
    groups: list[Group]
    tasks: list[Task]
    report: list[ReportItem]
    max_active_tasks: int | None
    max_active_note: str


def default_conn_id(server: str) -> str:
    """The documented default conn id of a SQL Server name: lower case, anything but letters, digits and
    ``_`` as ``_`` (``SQLNODE1\\ETL`` -> ``sqlnode1_etl``)."""
    return re.sub(r"\W+", "_", server.strip().lower()).strip("_")


def server_of(connection_string: str) -> str | None:
    """``Data Source=`` / ``Server=`` of an OLE DB or ADO.NET connection string."""
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() in ("data source", "server", "address", "addr") and value.strip():
            return value.strip()
    return None


def identifier(name: str) -> str:
    """An Airflow task or group id from an SSIS name: ASCII letters, digits and ``_`` only, at most 100."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()  # é -> e
    return re.sub(r"\W+", "_", ascii_name, flags=re.ASCII).strip("_").lower()[:100] or "task"


def classify_location(location: str) -> Location:
    """``\\SSISDB\\...`` is a catalog path, a drive or UNC path a file, anything else an msdb path."""
    if location.upper().startswith("\\SSISDB\\"):
        return "catalog_path"
    if re.match(r"^([A-Za-z]:\\|\\\\)", location) or location.lower().endswith(".dtsx"):
        return "file_path"
    return "msdb_path"


class _Converter:
    def __init__(self, package: Package, options: ImportOptions) -> None:
        self.package = package
        self.options = options
        self.problems: list[str] = []
        self.report: list[ReportItem] = []
        self.children: list[Child] = []
        self.opaque = {k for k, e in package.executables.items() if e.kind in ("for_loop", "foreach_loop")}
        self.flow = ControlFlow(package, self.opaque)
        self.pool_servers: list[str] = []

    def item(self, status: Status, node: Executable, became: str, note: str) -> None:
        self.report.append(ReportItem(status, self.flow.display(node.key), _short_type(node), became, note))

    # ------------------------------------------------------------------ servers

    def conn_id_of(self, connection_ref: str | None, node: Executable) -> str | None:
        manager = self.package.connection(connection_ref)
        if manager is None:
            if connection_ref:
                self.problems.append(
                    f"{self.flow.display(node.key)}: its connection {connection_ref!r} is not a connection manager "
                    "of the package"
                )
            return None
        server = server_of(manager.connection_string)
        if not server:
            return None
        conn_id = self.options.server_map.get(server) or self.options.server_map.get(server.lower())
        conn_id = conn_id or default_conn_id(server)
        if conn_id and conn_id not in self.pool_servers:
            self.pool_servers.append(conn_id)
        return conn_id or None

    # ------------------------------------------------------------------ children

    def add_child(self, wanted: Child) -> Child:
        """The manifest child for a task; tasks that run the same package the same way share one."""
        for child in self.children:
            same = (child.location_key, child.location.lower(), child.parameters) == (
                wanted.location_key,
                wanted.location.lower(),
                wanted.parameters,
            )
            if same:
                return child
        taken = {c.name.lower() for c in self.children}
        name, n = wanted.name, 2
        while name.lower() in taken:
            name, n = f"{wanted.name}_{n}", n + 1
        wanted.name = name
        self.children.append(wanted)
        return wanted

    def agent_job(self, node: Executable) -> Child | None:
        job = (node.data.job_name or "").strip()
        if not job:
            self.problems.append(f"{self.flow.display(node.key)}: the Execute SQL Server Agent Job task names no job")
            return None
        server = self.conn_id_of(node.data.connection, node)
        location = self.options.job_packages.get(job)
        if location is None:
            self.problems.append(
                f"{self.flow.display(node.key)}: which package does Agent job {job!r} run? The parent package does "
                f"not say: pass --job-package '{job}=\\SSISDB\\<folder>\\<project>\\<package>.dtsx' (or a file or "
                "msdb path)"
            )
            return None
        child = self.add_child(Child(job, classify_location(location), location, server))
        self.item("converted", node, f"child {child.name}", f"Agent job {job!r}; preferred server {server or '-'}")
        return child

    def execute_package(self, node: Executable) -> Child | None:
        where = self.flow.display(node.key)
        data = node.data
        if data.use_project_reference:
            if not data.package_name:
                self.problems.append(f"{where}: the Execute Package task names no package")
                return None
            if not (self.options.catalog_folder and self.options.project):
                self.problems.append(
                    f"{where}: runs {data.package_name!r} of its own project: pass --catalog-folder and --project "
                    "(where the project is deployed in SSISDB)"
                )
                return None
            package = data.package_name if data.package_name.lower().endswith(".dtsx") else data.package_name + ".dtsx"
            location = f"\\SSISDB\\{self.options.catalog_folder}\\{self.options.project}\\{package}"
            wanted = Child(package[: -len(".dtsx")], "catalog_path", location)
        else:
            manager = self.package.connection(data.connection)
            if manager is None:
                what = (
                    f"connection {data.connection!r}, which is not in the package" if data.connection else "no package"
                )
                self.problems.append(f"{where}: the Execute Package task names {what}")
                return None
            if manager.creation_name.upper() == "FILE":
                path = manager.connection_string.strip()
                if not path:
                    self.problems.append(f"{where}: file connection {manager.name!r} has no path")
                    return None
                if manager.has_expression:
                    self.note(node, f"the path of {manager.name!r} is set by an expression; kept its saved value")
                stem = re.split(r"[\\/]", path)[-1]
                wanted = Child(re.sub(r"\.dtsx$", "", stem, flags=re.IGNORECASE), "file_path", path)
            else:
                if not data.package_name:
                    self.problems.append(f"{where}: the Execute Package task names no package in msdb")
                    return None
                path = data.package_name if data.package_name.startswith("\\") else "\\" + data.package_name
                wanted = Child(path.rsplit("\\", 1)[-1], "msdb_path", path, self.conn_id_of(data.connection, node))
        wanted.parameters = self.bindings(node, wanted)
        child = self.add_child(wanted)
        how = {"catalog_path": "project reference", "file_path": "file reference", "msdb_path": "SQL Server reference"}
        self.item("converted", node, f"child {child.name}", f"{how[child.location_key]}: {child.location}")
        return child

    def bindings(self, node: Executable, child: Child) -> dict[str, str]:
        """Constant bindings as ``/Par`` values (catalog children); every other binding is reported."""
        parameters: dict[str, str] = {}
        for binding in node.data.bindings:
            name = binding.parameter if binding.parameter.startswith("$") else f"$Package::{binding.parameter}"
            source = binding.source
            variable = self.package.lookup_variable(node.key, source)
            constant = variable is not None and variable.expression is None and not source.startswith("$")
            if child.location_key != "catalog_path":
                why = "/Par applies to catalog packages only; set the value with the child's set_values (dtexec /SET)"
            elif source.startswith("$Project::"):
                why = "a project parameter's value lives in the project, not the package"
            elif source.startswith("$Package::"):
                default = f" (default {variable.value!r})" if variable and variable.value is not None else ""
                why = f"a parent package parameter{default} is set per execution"
            elif variable is None:
                why = "the variable is not in the package"
            elif not constant:
                why = f"the variable is computed by the expression `{variable.expression}`"
            else:
                value = _par_value(variable)
                typed = f"{name}({PAR_TYPES[variable.data_type]})" if variable.data_type in PAR_TYPES else name
                parameters[typed] = value
                self.note(
                    node,
                    f"{name} = {value!r}, the value {source} has in the package (a task that changes it is not seen)",
                )
                continue
            self.report.append(
                ReportItem(
                    "flagged",
                    self.flow.display(node.key),
                    "parameter binding",
                    f"{name} <- {source}",
                    f"not passed: {why}; sp_start_job takes no run-time values (docs/migration.md)",
                )
            )
        return parameters

    def note(self, node: Executable, text: str) -> None:
        self.flow.note(node.key, text)

    # ------------------------------------------------------------------ tasks

    def task(self, node: Executable, group: str | None, task_id: str) -> Task:
        ssis, kind = self.flow.display(node.key), _short_type(node)
        base = Task(node.key, task_id, group, "placeholder", ssis, kind)
        if node.kind == "agent_job" or node.kind == "execute_package":
            child = self.agent_job(node) if node.kind == "agent_job" else self.execute_package(node)
            if child is not None:
                base.kind, base.child = "child", child.name
            return base
        if node.kind == "sequence":  # a container left with nothing enabled inside
            base.kind = "empty"
            self.item("converted", node, "EmptyOperator", "an empty Sequence container")
            return base
        if node.kind == "execute_sql":
            converted = self.execute_sql(node, base)
            if converted:
                return base
        reason, what_to_do = NOT_CONVERTED.get(node.kind, NOT_CONVERTED["other"])
        if node.kind == "execute_sql" and base.reason:
            reason, what_to_do = base.reason, "rewrite it with an Airflow operator"
        base.reason, base.what_to_do = reason, what_to_do
        inside = ""
        if node.kind in ("for_loop", "foreach_loop"):
            inner = [self.flow.display(k) for k in self._descendants(node.key)]
            inside = f"; its {len(inner)} task(s) inside are not converted" if inner else ""
        self.item("not converted", node, "placeholder (fails)", f"{reason}{inside}; {what_to_do}")
        return base

    def execute_sql(self, node: Executable, task: Task) -> bool:
        manager = self.package.connection(node.data.connection)
        conn_id = self.options.conn_map.get(manager.name) if manager else None
        if manager is None or conn_id is None:
            return False
        sql_server = bool(SQL_SERVER_OLEDB.search(manager.connection_string)) or (
            SQL_SERVER_ADONET in manager.creation_name.lower()
        )
        data = node.data
        if not sql_server:
            task.reason = f"connection manager {manager.name!r} is not an OLE DB or ADO.NET SQL Server connection"
        elif data.sql_source_type != "DirectInput" or not (data.sql or "").strip():
            task.reason = f"its statement comes from a {data.sql_source_type}, not typed in the task"
        elif data.sql_has_parameters or data.sql_result_set:
            task.reason = "its statement binds parameters or a result set to variables"
        else:
            task.kind, task.conn_id, task.sql = "sql", conn_id, data.sql
            self.item("converted", node, "SQLExecuteQueryOperator", f"connection {manager.name!r} -> {conn_id}")
            return True
        return False

    def _descendants(self, key: str) -> list[str]:
        out = []
        for child in self.package.executables[key].children:
            out += [child, *self._descendants(child)]
        return out

    # ------------------------------------------------------------------ whole package

    def convert(self) -> ParentImport:
        groups: list[Group] = []
        tasks: list[Task] = []
        left_out: list[Executable] = []

        def visit(container: str, group: str | None) -> None:
            used: set[str] = set()
            for key in self.package.executables[container].children:
                node = self.package.executables[key]
                if node.disabled:
                    left_out.append(node)
                    continue
                task_id = _unique(identifier(node.name), used)
                if self.flow.is_group(key):
                    groups.append(Group(key, task_id, group, self.flow.display(key)))
                    self.item("converted", node, f"TaskGroup {task_id}", "a Sequence container")
                    visit(key, key)
                else:
                    tasks.append(self.task(node, group, task_id))

        visit(self.package.root, None)
        for node in left_out:
            inner = len(self._descendants(node.key))
            also = f", and the {inner} executable(s) inside it" if inner else ""
            self.item("left out", node, "-", f"disabled in the package{also}")
        by_key = {t.key: t for t in tasks}
        for key, (upstream, choice) in self.flow.dependencies().items():
            by_key[key].upstream = upstream
            by_key[key].trigger_rule = choice.rule
        cycle = _cycle(by_key)
        if cycle:
            path = " -> ".join(self.flow.display(k) for k in cycle)
            self.problems.append(f"the precedence constraints form a cycle: {path}")
        self.flag_notes()
        for key, event in self.package.event_handlers:
            self.report.append(
                ReportItem(
                    "left out",
                    self.flow.display(key),
                    "event handler",
                    "-",
                    f"{event} event handler: use the DAG's or a task's on_failure_callback, or a task with a "
                    "one_failed trigger rule",
                )
            )
        if not self.children and not self.problems:
            self.problems.append(
                "nothing to balance: the package has no enabled Execute Package or Execute SQL Server Agent Job task"
            )
        if self.problems:
            raise ImportProblem(self.package.path, self.problems)
        servers = self.servers()
        max_active, max_note = self.max_active()
        name = self.options.name or self.package.name
        dag_id = self.options.dag_id or "ssis_" + identifier(name)
        return ParentImport(
            self.package, name, dag_id, servers, self.children, groups, tasks, self.report, max_active, max_note
        )

    def flag_notes(self) -> None:
        for key, notes in self.flow.notes.items():
            node = self.package.executables[key]
            for text in notes:
                self.item("flagged", node, "as noted", text)

    def servers(self) -> tuple[tuple[str, int], ...]:
        servers = self.options.servers or tuple((conn_id, 1) for conn_id in self.pool_servers)
        if not servers:
            raise ImportProblem(
                self.package.path, ["no server found in the package's connections: name the pool with --server CONN_ID"]
            )
        known = {conn_id for conn_id, _capacity in servers}
        for child in self.children:
            if child.preferred_server and child.preferred_server not in known:
                self.report.append(
                    ReportItem(
                        "flagged",
                        child.name,
                        "child",
                        "no preferred server",
                        f"its original server {child.preferred_server!r} is not in the pool (--server); dropped",
                    )
                )
                child.preferred_server = None
        return servers

    def max_active(self) -> tuple[int | None, str]:
        value = self.package.max_concurrent
        if value > 0:
            return value, f"MaxConcurrentExecutables {value}"
        return None, (
            f"MaxConcurrentExecutables {value} means the number of processors + 2 of the machine that ran the "
            "parent, which is not known here: left to Airflow's [core] max_active_tasks_per_dag; the servers' "
            "capacities bound the children anyway"
        )


def convert(package: Package, options: ImportOptions | None = None) -> ParentImport:
    """The manifest children, DAG tasks and report of a parent package; raises ``ImportProblem``."""
    return _Converter(package, options or ImportOptions()).convert()


def _cycle(tasks: dict[str, Task]) -> list[str]:
    """A cycle of upstream links (SSIS refuses to run one; Airflow would refuse the DAG), or []."""
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(key: str, path: list[str]) -> list[str]:
        state[key] = 1
        for upstream in sorted(tasks[key].upstream):
            if state.get(upstream) == 1:
                return [*path[path.index(upstream) :], key, upstream] if upstream in path else [key, upstream]
            if upstream not in state:
                found = visit(upstream, [*path, key])
                if found:
                    return found
        state[key] = 2
        return []

    for key in tasks:
        if key not in state:
            found = visit(key, [])
            if found:
                return found
    return []


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}_{n}", n + 1
    used.add(candidate)
    return candidate


def _short_type(node: Executable) -> str:
    labels = {
        "agent_job": "Execute SQL Server Agent Job",
        "execute_package": "Execute Package",
        "execute_sql": "Execute SQL",
        "sequence": "Sequence container",
        "for_loop": "For Loop container",
        "foreach_loop": "Foreach Loop container",
        "data_flow": "Data Flow",
        "script": "Script",
    }
    return labels.get(node.kind) or node.executable_type.split(",")[0]


def _par_value(variable: Variable) -> str:
    value = variable.value or ""
    if variable.data_type == 11:  # Boolean: SSIS saves true/false or -1/0; dtexec wants True/False
        return "True" if value.strip().lower() in ("true", "-1", "1") else "False"
    return value
