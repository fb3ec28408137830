"""sp_add_category and sp_help_category.

- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-add-category-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-help-category-transact-sql
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..sql.results import Column, SqlType
from . import errors
from .jobs import clean, not_null
from .permissions import require_agent_user, require_sysadmin
from .schema import FIRST_USER_CATEGORY_ID

if TYPE_CHECKING:
    from ..sql.procedures import ProcContext

ADD_CATEGORY_PARAMS = ("@class", "@type", "@name")
HELP_CATEGORY_PARAMS = ("@class", "@type", "@name", "@suffix")

CLASSES = {"JOB": 1, "ALERT": 2, "OPERATOR": 3}
TYPES = {"LOCAL": 1, "MULTI-SERVER": 2, "NONE": 3}
TYPE_NAMES = {code: name for name, code in TYPES.items()}


def _class_code(value: Any) -> int:
    text = str(clean(value) or "JOB").upper()
    if text not in CLASSES:
        raise errors.invalid_values("@class", "JOB, ALERT, OPERATOR")
    return CLASSES[text]


def _type_code(value: Any, category_class: int) -> int:
    text = str(clean(value) or "LOCAL").upper()
    if text not in TYPES:
        raise errors.invalid_values("@type", "LOCAL, MULTI-SERVER, NONE")
    code = TYPES[text]
    if category_class == CLASSES["JOB"] and code == TYPES["NONE"]:
        raise errors.invalid_values("@type", "LOCAL, MULTI-SERVER")
    if category_class != CLASSES["JOB"] and code != TYPES["NONE"]:
        raise errors.invalid_values("@type", "NONE")
    return code


# ``@class`` binds to the keyword 'class', which Python reserves: it arrives through **extra.


def sp_add_category(ctx: ProcContext, type: Any = "LOCAL", *, name: Any, **extra: Any) -> int:
    """Add a job, alert or operator category (sysadmin only; msdb grants it to no Agent role)."""
    require_sysadmin(ctx.login, "sp_add_category")
    category_class = _class_code(extra.get("class", "JOB"))
    category_type = _type_code(type, category_class)
    text = clean(name)
    if text is None:
        raise not_null("name", "msdb.dbo.syscategories")
    taken = ctx.query(
        "SELECT COUNT(*) FROM msdb.dbo.syscategories WHERE category_class = @c AND name = @n",
        {"@c": category_class, "@n": text},
    )
    if taken[0][0]:
        raise errors.already_exists("@name", text)
    highest = ctx.query("SELECT MAX(category_id) FROM msdb.dbo.syscategories")[0][0] or 0
    ctx.execute(
        "INSERT INTO msdb.dbo.syscategories (category_id, category_class, category_type, name) "
        "VALUES (@id, @c, @t, @n)",
        {
            "@id": max(FIRST_USER_CATEGORY_ID, int(highest) + 1),
            "@c": category_class,
            "@t": category_type,
            "@n": text,
        },
    )
    return 0


def sp_help_category(ctx: ProcContext, type: Any = None, name: Any = None, suffix: Any = 0, **extra: Any) -> int:
    """The categories of one class; category_type is text (LOCAL, MULTI-SERVER, NONE) with @suffix = 1."""
    require_agent_user(ctx.login, "sp_help_category")
    category_class = _class_code(extra.get("class", "JOB"))
    conditions = ["category_class = @c"]
    params: dict[str, Any] = {"@c": category_class}
    if clean(type) is not None:
        text = str(clean(type)).upper()
        if text not in TYPES:
            raise errors.invalid_values("@type", "LOCAL, MULTI-SERVER, NONE")
        conditions.append("category_type = @t")
        params["@t"] = TYPES[text]
    if clean(name) is not None:
        conditions.append("name = @n")
        params["@n"] = clean(name)
    rows = ctx.query(
        "SELECT category_id, category_type, name FROM msdb.dbo.syscategories "
        f"WHERE {' AND '.join(conditions)} ORDER BY category_type, name",
        params,
    )
    if suffix is not None and int(suffix):
        columns = [
            Column("category_id", SqlType.INT),
            Column("category_type", SqlType.NVARCHAR),
            Column("name", SqlType.NVARCHAR),
        ]
        ctx.result(columns, [(cid, TYPE_NAMES.get(kind, str(kind)), n) for cid, kind, n in rows])
    else:
        columns = [
            Column("category_id", SqlType.INT),
            Column("category_type", SqlType.TINYINT),
            Column("name", SqlType.NVARCHAR),
        ]
        ctx.result(columns, rows)
    return 0
