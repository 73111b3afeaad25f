"""Declared SQL with named parameters: `:name` binds a value, `{schema:name}` names a warehouse schema.

Values are always bound as parameters (`?` placeholders of the warehouse session), never written into the
SQL text, so a variable can hold any string. Schema placeholders are identifiers resolved from the
platform environment (the ci prefix), checked against the identifier rules when the declaration loads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import closing
from typing import Any

import psycopg2

from platform_assets import environment
from platform_assets.warehouse import WarehouseSession, quote_identifier

# String literals and quoted identifiers are skipped; `::` is a cast, not a parameter.
_TOKENS = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\{schema:(?P<schema>[^{}]*)\}"
)


class SqlTemplateError(ValueError):
    """A declared SQL statement names a parameter or schema it cannot have."""


def parameters(sql: str) -> list[str]:
    """The `:name` parameters of a statement, in order of appearance (repeats included)."""
    return [m["name"] for m in _TOKENS.finditer(sql) if m["name"]]


def check(sql: str, known: set[str] | frozenset[str], where: str) -> None:
    """Fail naming `where` when the statement binds an unknown parameter or an invalid schema."""
    unknown = sorted(set(parameters(sql)) - set(known))
    if unknown:
        raise SqlTemplateError(
            f"{where}: unknown parameter(s) {', '.join(':' + n for n in unknown)}; "
            f"known: {', '.join(':' + n for n in sorted(known)) or 'none'}"
        )
    for match in _TOKENS.finditer(sql):
        if match["schema"] is not None:
            try:
                quote_identifier(match["schema"])
            except ValueError as error:
                raise SqlTemplateError(f"{where}: {{schema:{match['schema']}}}: {error}") from None


def bind(sql: str, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """(`?`-placeholder SQL, parameters) for a warehouse session; schemas get the environment's prefix."""
    params: list[Any] = []
    env = environment.current()

    def replace(match: re.Match[str]) -> str:
        if match["name"]:
            params.append(values[match["name"]])
            return "?"
        if match["schema"] is not None:
            name = env.schema(match["schema"])
            quote_identifier(name)  # checked, but left unquoted: Snowflake folds unquoted names to upper case
            return name
        return match.group(0)

    return _TOKENS.sub(replace, sql), params


def fetch_rows(session: WarehouseSession, sql: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of a query as {column name (lower case): value}, in the query's column order."""
    text, params = bind(sql, values)
    cursor = session.raw.cursor()  # type: ignore[attr-defined]  # the column names need the cursor
    cursor.execute(text, params)
    return _rows(cursor)


def fetch_app_db_rows(url: str, sql: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of a query against the application database (PostgreSQL), in a read-only transaction."""
    text, params = _bind_pyformat(sql, values)
    with closing(psycopg2.connect(url)) as connection:
        connection.set_session(readonly=True)
        with connection.cursor() as cursor:
            cursor.execute(text, params)
            return _rows(cursor)


def _bind_pyformat(sql: str, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """psycopg2's `%s` placeholders: every other `%` (a LIKE pattern, say) is escaped as `%%`."""
    marker = "\x00"
    params: list[Any] = []

    def replace(match: re.Match[str]) -> str:
        if match["name"]:
            params.append(values[match["name"]])
            return marker
        return match.group(0)

    return _TOKENS.sub(replace, sql).replace("%", "%%").replace(marker, "%s"), params


def _rows(cursor: Any) -> list[dict[str, Any]]:
    columns = [str(column[0]).lower() for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def execute(session: WarehouseSession, sql: str, values: Mapping[str, Any]) -> None:
    text, params = bind(sql, values)
    session.execute(text, params)


def missing_relation(error: Exception) -> bool:
    """Whether a query failed because a table or schema it reads does not exist yet (before the first
    build): a sensor then skips with the error instead of failing every tick."""
    text = str(error).lower()
    words = ("table", "schema", "object", "catalog", "relation")
    return "does not exist" in text and any(word in text for word in words)
