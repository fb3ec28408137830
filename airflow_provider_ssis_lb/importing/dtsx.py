"""Read an SSIS package (.dtsx) into small typed records: executables, precedence constraints, connection
managers, variables. This module knows SSIS only; ``parent.py`` turns the records into a manifest and a DAG.

Two layouts ([MS-DTSX], https://learn.microsoft.com/en-us/openspecs/sql_data_portability/ms-dtsx):

- the attribute layout of SQL Server 2012 and later (``PackageFormatVersion`` 6 for 2012/2014, 8 from 2016):
  properties are ``DTS:`` attributes, every executable has a ``DTS:refId`` path (``Package\\Load\\Run X``),
  and constraints name their ends by refId (``DTS:From``, ``DTS:To``); properties at their default value
  are left out (``DTS:Value`` 0 = success, ``DTS:EvalOp`` 1 = constraint only, ``DTS:LogicalAnd`` false);
- the element layout of 2005 and 2008 (versions 2 and 3): properties are ``<DTS:Property DTS:Name="...">``
  child elements, and a constraint points at its ends with ``<DTS:Executable IDREF="{DTSID}"
  DTS:IsFrom="-1|0"/>``. Executables there are keyed by their path of DTSIDs.

Names are not keys: the same task name may appear in two containers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

DTS = "www.microsoft.com/SqlServer/Dts"
SQLTASK = "www.microsoft.com/sqlserver/dts/tasks/sqltask"
ATTRIBUTE_LAYOUT = (6, 8)
ELEMENT_LAYOUT = (2, 3)
MAX_BYTES = 64 * 1024 * 1024  # a parent package is a few hundred kilobytes; refuse what cannot be one
# DTSPackageType: 3 replication and 6 maintenance plans are packages SQL Server generates, not parents
REFUSED_PACKAGE_TYPES = {"3": "a replication package", "6": "a maintenance plan"}
_TRUE = {"true", "-1", "1"}


class PackageError(ValueError):
    """The file is not a package this importer reads; the message names the file and the cause."""


class Outcome(enum.IntEnum):
    """``DTS:Value`` of a precedence constraint (DTSExecResult)."""

    SUCCESS = 0
    FAILURE = 1
    COMPLETION = 2


class EvalOp(enum.IntEnum):
    """``DTS:EvalOp``: what a constraint evaluates."""

    EXPRESSION = 0
    CONSTRAINT = 1
    EXPRESSION_AND_CONSTRAINT = 2
    EXPRESSION_OR_CONSTRAINT = 3


TaskKind = Literal[
    "agent_job",
    "execute_package",
    "execute_sql",
    "sequence",
    "for_loop",
    "foreach_loop",
    "data_flow",
    "script",
    "other",
]


@dataclass(frozen=True)
class ConnectionManager:
    dtsid: str
    name: str
    creation_name: str  # FILE, OLEDB, ADO.NET:System.Data.SqlClient.SqlConnection, ...
    connection_string: str
    has_expression: bool = False


@dataclass(frozen=True)
class Variable:
    qualified_name: str  # User::BatchSize, $Package::Region
    value: str | None
    data_type: int | None
    expression: str | None = None  # set when the value is computed at run time


@dataclass(frozen=True)
class ParameterBinding:
    """One ParameterAssignment of an Execute Package task: child parameter <- parent variable or parameter."""

    parameter: str
    source: str


@dataclass(frozen=True)
class TaskData:
    """What the importer reads from a task's ObjectData (the fields that apply to its kind)."""

    job_name: str | None = None  # Execute SQL Server Agent Job
    connection: str | None = None  # connection manager DTSID (or name) the task uses
    use_project_reference: bool = False  # Execute Package
    package_name: str | None = None  # Execute Package: project package name or msdb path
    bindings: tuple[ParameterBinding, ...] = ()
    sql: str | None = None  # Execute SQL: the statement when typed in directly
    sql_source_type: str = "DirectInput"
    sql_has_parameters: bool = False
    sql_result_set: bool = False


@dataclass
class Executable:
    key: str  # refId (attribute layout) or DTSID path (element layout)
    name: str
    dtsid: str
    executable_type: str
    kind: TaskKind
    disabled: bool
    parent: str | None  # key of the container holding it
    data: TaskData = field(default_factory=TaskData)
    children: list[str] = field(default_factory=list)  # keys, document order
    variables: dict[str, Variable] = field(default_factory=dict)

    @property
    def is_container(self) -> bool:
        return self.kind in ("sequence", "for_loop", "foreach_loop")


@dataclass(frozen=True)
class Constraint:
    key: str
    container: str  # key of the container whose children it connects
    source: str  # executable keys
    target: str
    value: Outcome
    logical_and: bool
    eval_op: EvalOp
    expression: str | None


@dataclass
class Package:
    path: str
    name: str
    dtsid: str
    format_version: int
    max_concurrent: int
    root: str  # key of the package executable itself
    executables: dict[str, Executable]
    constraints: list[Constraint]
    connections: dict[str, ConnectionManager]  # by DTSID
    parameters: dict[str, Variable]  # $Package::Name
    event_handlers: list[tuple[str, str]]  # (executable key, event name)

    def connection(self, ref: str | None) -> ConnectionManager | None:
        """A connection manager by DTSID or, as tasks may store it, by name."""
        if not ref:
            return None
        if ref.startswith("Package.ConnectionManagers[") and ref.endswith("]"):  # a refId
            ref = ref[len("Package.ConnectionManagers[") : -1]
        found = self.connections.get(ref.upper())
        return found or next((c for c in self.connections.values() if c.name.lower() == ref.lower()), None)

    def effectively_disabled(self, key: str) -> bool:
        """Disabled itself or inside a disabled container (the XML marks only the container)."""
        node: str | None = key
        while node is not None:
            if self.executables[node].disabled:
                return True
            node = self.executables[node].parent
        return False

    def lookup_variable(self, scope: str, name: str) -> Variable | None:
        """A variable as the task at ``scope`` sees it: its own, then its containers' up to the package's."""
        if name.startswith("$Package::"):
            return self.parameters.get(name)
        qualified = name if "::" in name else f"User::{name}"
        node: str | None = scope
        while node is not None:
            found = self.executables[node].variables.get(qualified)
            if found:
                return found
            node = self.executables[node].parent
        return None


def task_kind(executable_type: str) -> TaskKind:
    """The kind of an executable from its ``ExecutableType`` (``Microsoft.ExecutePackageTask`` from 2016,
    ``SSIS.ExecutePackageTask.3`` before, assembly-qualified names for the maintenance tasks)."""
    text = executable_type.lower()
    table: tuple[tuple[str, TaskKind], ...] = (
        ("executeagentjobtask", "agent_job"),
        ("executepackagetask", "execute_package"),
        ("executesqltask", "execute_sql"),
        ("stock:sequence", "sequence"),
        ("stock:forloop", "for_loop"),
        ("stock:foreachloop", "foreach_loop"),
        ("pipeline", "data_flow"),
        ("scripttask", "script"),
    )
    return next((kind for needle, kind in table if needle in text), "other")


def read_package(path: str | Path) -> Package:
    """Parse a .dtsx file; raises ``PackageError`` naming the file and the cause."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise PackageError(f"{path}: {size} bytes is too large for a package (at most {MAX_BYTES})")
        data = path.read_bytes()
    except OSError as exc:
        raise PackageError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    return parse_package(data, str(path))


def parse_package(data: bytes, source: str = "package.dtsx") -> Package:
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise PackageError(
            f"{source}: refused: the XML declares a DTD or entities ({type(exc).__name__}); "
            "a package saved by SSIS never does"
        ) from None
    except ParseError as exc:
        raise PackageError(f"{source}: not an SSIS package: not well-formed XML ({exc})") from None
    if root.tag != f"{{{DTS}}}Executable":
        raise PackageError(
            f"{source}: not an SSIS package: the root element is <{_local(root.tag)}>, "
            f"a package's is <DTS:Executable> in namespace {DTS}"
        )
    version_text = _property(root, "PackageFormatVersion")
    if version_text is None or not version_text.strip().isdigit():
        raise PackageError(f"{source}: not an SSIS package: it has no PackageFormatVersion property")
    version = int(version_text)
    kind = (_attr(root, "ExecutableType") or _property(root, "ExecutableType") or "").strip()
    if "package" not in kind.lower():
        raise PackageError(f"{source}: another kind of file: its root executable is {kind!r}, not a package")
    package_type = _attr(root, "PackageType") or _property(root, "PackageType")
    if package_type in REFUSED_PACKAGE_TYPES:
        raise PackageError(
            f"{source}: another package type: {REFUSED_PACKAGE_TYPES[package_type]} (PackageType {package_type}), "
            "not a parent package"
        )
    if version in ATTRIBUTE_LAYOUT:
        reader: _Reader = _AttributeReader(source)
    elif version in ELEMENT_LAYOUT:
        reader = _ElementReader(source)
    else:
        raise PackageError(
            f"{source}: PackageFormatVersion {version} is not supported "
            "(2 and 3: SQL Server 2005/2008; 6: 2012/2014; 8: 2016 and later)"
        )
    return reader.read(root, version)


# ---------------------------------------------------------------------------------------------- helpers


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(element: Element, name: str, namespace: str = DTS) -> str | None:
    return element.get(f"{{{namespace}}}{name}")


def _property(element: Element, name: str) -> str | None:
    """``<DTS:Property DTS:Name="name">value</DTS:Property>`` directly under ``element`` (element layout;
    the attribute layout keeps a few, PackageFormatVersion among them)."""
    for prop in element.findall(f"{{{DTS}}}Property"):
        if _attr(prop, "Name") == name:
            return prop.text or ""
    return None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def _int(value: str | None, default: int, what: str, source: str) -> int:
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise PackageError(f"{source}: {what} is {value!r}, not a number") from None


def _object_data(element: Element) -> Element | None:
    return element.find(f"{{{DTS}}}ObjectData")


def _field(data: Element, name: str) -> str | None:
    """A task's ObjectData field, written as an element, an attribute or ``<Property Name=...>`` depending on
    the task and the version."""
    lowered = name.lower()
    for node in data.iter():
        for key, value in node.attrib.items():
            if _local(key).lower() == lowered:
                return value
        if _local(node.tag).lower() == lowered and len(node) == 0:
            return node.text or ""
        if _local(node.tag).lower() == "property" and (node.get("Name") or "").lower() == lowered:
            return node.text or ""
    return None


def _task_data(kind: TaskKind, element: Element) -> TaskData:
    data = _object_data(element)
    if data is None:
        return TaskData()
    if kind == "agent_job":
        return TaskData(job_name=_field(data, "AgentJobID"), connection=_field(data, "Connection"))
    if kind == "execute_package":
        bindings = []
        for assignment in data.iter():
            if _local(assignment.tag) == "ParameterAssignment":
                parameter = _field(assignment, "ParameterName")
                source = _field(assignment, "BindedVariableOrParameterName")
                if parameter and source:
                    bindings.append(ParameterBinding(parameter.strip(), source.strip()))
        return TaskData(
            connection=_field(data, "Connection"),
            use_project_reference=_flag(_field(data, "UseProjectReference")),
            package_name=(_field(data, "PackageName") or "").strip() or None,
            bindings=tuple(bindings),
        )
    if kind == "execute_sql":
        sql = data.find(f"{{{SQLTASK}}}SqlTaskData")
        if sql is None:
            return TaskData()
        return TaskData(
            connection=_attr(sql, "Connection", SQLTASK),
            sql=_attr(sql, "SqlStatementSource", SQLTASK),
            sql_source_type=_attr(sql, "SqlStmtSourceType", SQLTASK) or "DirectInput",
            sql_has_parameters=sql.find(f"{{{SQLTASK}}}ParameterBinding") is not None,
            sql_result_set=sql.find(f"{{{SQLTASK}}}ResultBinding") is not None
            or (_attr(sql, "ResultType", SQLTASK) or "ResultSetType_None") != "ResultSetType_None",
        )
    return TaskData()


class _Reader:
    """Walks the executable tree; the two layouts differ in how a property and a constraint are written."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.executables: dict[str, Executable] = {}
        self.constraints: list[Constraint] = []
        self.connections: dict[str, ConnectionManager] = {}
        self.parameters: dict[str, Variable] = {}
        self.event_handlers: list[tuple[str, str]] = []

    def value(self, element: Element, name: str) -> str | None:
        raise NotImplementedError

    def key(self, element: Element, parent: str | None, dtsid: str) -> str:
        raise NotImplementedError

    def read_constraints(self, container: Element, key: str) -> None:
        raise NotImplementedError

    def read(self, root: Element, version: int) -> Package:
        dtsid = (self.value(root, "DTSID") or "").upper()
        name = self.value(root, "ObjectName") or Path(self.source).stem
        self.read_connections(root)
        self.read_parameters(root)
        root_key = self.walk(root, None)
        max_concurrent = _int(self.value(root, "MaxConcurrentExecutables"), -1, "MaxConcurrentExecutables", self.source)
        package = Package(
            self.source,
            name,
            dtsid,
            version,
            max_concurrent,
            root_key,
            self.executables,
            self.constraints,
            self.connections,
            self.parameters,
            self.event_handlers,
        )
        self.check(package)
        return package

    def walk(self, element: Element, parent: str | None) -> str:
        executable_type = self.value(element, "ExecutableType") or self.value(element, "CreationName") or ""
        dtsid = (self.value(element, "DTSID") or "").upper()
        key = self.key(element, parent, dtsid)
        if key in self.executables:
            raise PackageError(f"{self.source}: two executables share the key '{key}'")
        kind: TaskKind = "other" if parent is None else task_kind(executable_type)
        node = Executable(
            key=key,
            name=self.value(element, "ObjectName") or key,
            dtsid=dtsid,
            executable_type=executable_type,
            kind=kind,
            disabled=_flag(self.value(element, "Disabled")),
            parent=parent,
            data=_task_data(kind, element),
        )
        self.executables[key] = node
        self.read_variables(element, node)
        holder = element.find(f"{{{DTS}}}EventHandlers")
        handlers = list(holder) if holder is not None else element.findall(f"{{{DTS}}}EventHandler")
        self.event_handlers += [(key, self.value(handler, "EventName") or "?") for handler in handlers]
        for child in self.child_executables(element):
            node.children.append(self.walk(child, key))
        self.read_constraints(element, key)
        return key

    def child_executables(self, element: Element) -> list[Element]:
        """Executables directly inside this container (not those of its event handlers)."""
        holder = element.find(f"{{{DTS}}}Executables")
        found = list(holder) if holder is not None else []
        found += element.findall(f"{{{DTS}}}Executable")  # element layout: directly under the container
        return [e for e in found if e.tag == f"{{{DTS}}}Executable" and e.get("IDREF") is None]

    def read_connections(self, root: Element) -> None:
        holder = root.find(f"{{{DTS}}}ConnectionManagers")
        managers = list(holder) if holder is not None else root.findall(f"{{{DTS}}}ConnectionManager")
        for manager in managers:
            dtsid = (self.value(manager, "DTSID") or "").upper()
            inner = _object_data(manager)
            inner_manager = inner.find(f"{{{DTS}}}ConnectionManager") if inner is not None else None
            connection_string = self.value(inner_manager, "ConnectionString") if inner_manager is not None else None
            self.connections[dtsid] = ConnectionManager(
                dtsid,
                self.value(manager, "ObjectName") or dtsid,
                self.value(manager, "CreationName") or "",
                connection_string or "",
                has_expression=any(_local(e.tag) == "PropertyExpression" for e in manager.iter()),
            )

    def read_variables(self, element: Element, node: Executable) -> None:
        holder = element.find(f"{{{DTS}}}Variables")
        variables = list(holder) if holder is not None else element.findall(f"{{{DTS}}}Variable")
        for variable in variables:
            namespace = self.value(variable, "Namespace") or "User"
            name = f"{namespace}::{self.value(variable, 'ObjectName') or ''}"
            value_element = variable.find(f"{{{DTS}}}VariableValue")
            value = value_element.text if value_element is not None else None
            data_type = _attr(value_element, "DataType") if value_element is not None else None
            computed = _flag(self.value(variable, "EvaluateAsExpression"))
            node.variables[name] = Variable(
                name,
                value,
                int(data_type) if data_type and data_type.isdigit() else None,
                (self.value(variable, "Expression") or "?") if computed else None,
            )

    def read_parameters(self, root: Element) -> None:
        holder = root.find(f"{{{DTS}}}PackageParameters")
        for parameter in list(holder) if holder is not None else []:
            name = f"$Package::{self.value(parameter, 'ObjectName') or ''}"
            value = _property(parameter, "ParameterValue")
            data_type = self.value(parameter, "DataType")
            self.parameters[name] = Variable(name, value, int(data_type) if data_type and data_type.isdigit() else None)

    def check(self, package: Package) -> None:
        """Every constraint joins two executables of the container it belongs to."""
        problems = []
        for constraint in self.constraints:
            for end in (constraint.source, constraint.target):
                if end not in self.executables:
                    problems.append(
                        f"precedence constraint '{constraint.key}' points at '{end}', which is not in the package"
                    )
                elif self.executables[end].parent != constraint.container:
                    problems.append(
                        f"precedence constraint '{constraint.key}' joins '{end}', which is not in container "
                        f"'{constraint.container}'"
                    )
        if problems:
            raise PackageError(f"{self.source}: missing references:\n  " + "\n  ".join(problems))

    def constraint(self, key: str, container: str, source: str, target: str, get: dict[str, str | None]) -> None:
        value = _int(get.get("Value"), 0, f"constraint '{key}' Value", self.source)
        eval_op = _int(get.get("EvalOp"), 1, f"constraint '{key}' EvalOp", self.source)
        if value not in tuple(Outcome) or eval_op not in tuple(EvalOp):
            raise PackageError(
                f"{self.source}: precedence constraint '{key}': Value {value} / EvalOp {eval_op} unknown"
            )
        self.constraints.append(
            Constraint(
                key,
                container,
                source,
                target,
                Outcome(value),
                _flag(get.get("LogicalAnd")),
                EvalOp(eval_op),
                (get.get("Expression") or "").strip() or None,
            )
        )


class _AttributeReader(_Reader):
    """PackageFormatVersion 6 and 8."""

    def value(self, element: Element, name: str) -> str | None:
        found = _attr(element, name)
        return found if found is not None else _property(element, name)

    def key(self, element: Element, parent: str | None, dtsid: str) -> str:
        ref = _attr(element, "refId")
        if not ref:
            raise PackageError(f"{self.source}: an executable has no DTS:refId (under {parent or 'the root'})")
        return ref

    def read_constraints(self, container: Element, key: str) -> None:
        holder = container.find(f"{{{DTS}}}PrecedenceConstraints")
        for element in list(holder) if holder is not None else []:
            ref = _attr(element, "refId") or "?"
            source, target = _attr(element, "From"), _attr(element, "To")
            if not source or not target:
                raise PackageError(f"{self.source}: precedence constraint '{ref}' lacks DTS:From or DTS:To")
            names = ("Value", "LogicalAnd", "EvalOp", "Expression")
            self.constraint(ref, key, source, target, {n: _attr(element, n) for n in names})


class _ElementReader(_Reader):
    """PackageFormatVersion 2 and 3: properties as elements, constraints by DTSID."""

    def value(self, element: Element, name: str) -> str | None:
        found = _property(element, name)
        return found if found is not None else _attr(element, name)

    def key(self, element: Element, parent: str | None, dtsid: str) -> str:
        if not dtsid:
            raise PackageError(f"{self.source}: an executable has no DTSID property (under {parent or 'the root'})")
        return f"{parent}\\{dtsid}" if parent else dtsid

    def read_constraints(self, container: Element, key: str) -> None:
        by_dtsid = {self.executables[k].dtsid: k for k in self.executables[key].children}
        for element in container.findall(f"{{{DTS}}}PrecedenceConstraint"):
            ref = f"{key}\\{(self.value(element, 'DTSID') or '?').upper()}"
            ends: dict[bool, str] = {}
            for end in element.findall(f"{{{DTS}}}Executable"):
                idref = (end.get("IDREF") or "").upper()
                is_from = _flag(_attr(end, "IsFrom"))
                ends[is_from] = by_dtsid.get(idref, f"{key}\\{idref}")
            if True not in ends or False not in ends:
                raise PackageError(f"{self.source}: precedence constraint '{ref}' lacks its from or to executable")
            names = ("Value", "LogicalAnd", "EvalOp", "Expression")
            self.constraint(ref, key, ends[True], ends[False], {n: self.value(element, n) for n in names})
