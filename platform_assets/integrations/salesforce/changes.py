"""Hightouch-style change detection, in the warehouse.

One query per run: hash every model row over the mapped columns (in SQL), join it against the last
confirmed hashes in sync_state, and return only rows that are new, changed, or (mirror mode) gone.
Only those rows travel to Python, so a 1M-row model with 1% changes moves 10k rows.

The hash is the warehouse's own 64-bit `hash(...)` (DuckDB and Snowflake both have a variadic one), salted
with the sync's mapping so that a mapping change re-sends every row. A hash-function change in a warehouse
upgrade makes every row look changed once: upserts and updates are idempotent, and insert mode only ever
sends keys absent from state, so it cannot create duplicates.
"""

from __future__ import annotations

import gc
import hashlib
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from platform_assets.integrations.salesforce.sync_spec import SyncSpec
from platform_assets.integrations.salesforce.sync_state import ADDED, CHANGED, REMOVED
from platform_assets.warehouse import WarehouseSession, quote_identifier

NULL = "#N/A"  # Bulk API 2.0's explicit null; an empty cell leaves the field unchanged


class Keep:
    """A field value that is sent as an empty Bulk cell: Salesforce's value stays (conflict policies)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()


class ModelError(RuntimeError):
    """The sync's dbt model is missing from the warehouse or lacks a mapped column."""


def wire_value(value: Any) -> str:
    """A model value as Bulk 2.0 CSV text; serialised here so results can be matched on exact text."""
    kind = type(value)
    if kind is str:  # the common cases first: this runs for every cell sent
        return value or NULL
    if kind is int:
        return str(value)
    if value is None:
        return NULL
    if value is KEEP:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        spec = "milliseconds" if value.microsecond else "seconds"
        return value.isoformat(timespec=spec) + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if not math.isfinite(value):
            return NULL
        text = repr(value)  # shortest round-trip form; only exponents need rewriting
        return format(Decimal(text), "f") if "e" in text else text
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a sync builds its records. Each record is a few acyclic
    tuples and dicts that reference counting frees, but allocating 10k of them sets off full collections
    over the whole heap: a fifth of a 10k-record run's time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class ModelRelation:
    schema: str
    table: str
    columns: dict[str, str]
    """Mapping column (as written in the sync YAML) -> the column's name in the warehouse."""
    scope: tuple[tuple[str, Any], ...] = ()
    """(column, value): only the model rows with these values take part (a workflow run's slice)."""

    @property
    def sql(self) -> str:
        return f"{quote_identifier(self.schema)}.{quote_identifier(self.table)}"

    def column(self, name: str) -> str:
        return quote_identifier(self.columns[name])


@dataclass(slots=True)
class Change:
    record_key: str
    row_hash: int | None
    change_type: str
    salesforce_id: str | None
    values: tuple[Any, ...]
    """The mapped columns' values, in the order of the sync's mapping (empty for removed records)."""


@dataclass
class ChangeSet:
    changes: list[Change] = field(default_factory=list)
    null_keys: int = 0
    duplicate_keys: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, change_type: str) -> int:
        return sum(1 for c in self.changes if c.change_type == change_type)


def resolve_model(
    session: WarehouseSession,
    spec: SyncSpec,
    schema: str,
    table: str | None = None,
    scope: Mapping[str, Any] | None = None,
) -> ModelRelation:
    """Find the model's table (`table`, else the model's name) and the real names of its mapped columns
    (Snowflake upper-cases unquoted names; DuckDB keeps them), failing with what is missing. With `scope`
    (column -> value), only the rows holding those values take part in change detection."""
    scope = dict(scope or {})
    table = table or spec.model_name
    rows = session.fetchall(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "WHERE lower(table_schema) = lower(?) AND lower(table_name) = lower(?)",
        [schema, table],
    )
    if not rows:
        raise ModelError(
            f"Sync {spec.name}: the model {schema}.{table} does not exist in the warehouse. "
            f"Build it first (dbt build --select {spec.model_name}) or fix `model` in {spec.source_file}."
        )
    actual = {column.lower(): column for _, _, column in rows}
    changed_at = [spec.changed_at_column] if spec.changed_at_column else []
    needed = list(dict.fromkeys([spec.primary_key, *spec.mapping, *changed_at, *scope]))
    missing = [c for c in needed if c.lower() not in actual]
    if missing:
        raise ModelError(
            f"Sync {spec.name}: the model {schema}.{table} has no column(s) {', '.join(missing)} "
            f"(columns: {', '.join(sorted(actual.values()))}). Fix `mapping`/`primary_key` in "
            f"{spec.source_file} or add the column to the model."
        )
    return ModelRelation(
        schema=rows[0][0],
        table=rows[0][1],
        columns={c: actual[c.lower()] for c in needed},
        scope=tuple(scope.items()),
    )


def hash_salt(spec: SyncSpec) -> int:
    """A positive BIGINT derived from the sync's mapping, safe to inline as a SQL literal."""
    return int.from_bytes(hashlib.sha256(spec.signature().encode()).digest()[:8], "big") >> 1


def row_hash_sql(spec: SyncSpec, model: ModelRelation, alias: str) -> str:
    """A row's hash: the warehouse's variadic 64-bit hash over the key and the mapped columns.

    The key is part of the hash so that "unchanged" is one integer lookup (row_hash in state), which
    joins much faster than comparing string keys and then hashes."""
    columns = ", ".join(f"{alias}.{model.column(c)}" for c in [spec.primary_key, *spec.mapping])
    return f"hash({hash_salt(spec)}, {columns})"


def change_query(
    spec: SyncSpec, model: ModelRelation, state_table: str, full_resync: bool, dialect: str = "duckdb"
) -> tuple[str, int]:
    """The one SQL statement that finds added, changed and (mirror) removed rows, and how many times it
    takes the sync name as a parameter.

    1. `changed`: model rows whose hash is not among the sync's stored hashes (new or edited rows);
       insert mode instead takes rows whose key is not in state (it never re-sends a confirmed key).
    2. Only those rows are joined to their keys' state rows, for the Salesforce Id and added-vs-changed.
    3. Mirror mode adds state rows whose key left the model (removed)."""
    mapped = list(spec.mapping)
    values = ", ".join(f"m.{model.column(c)} AS v{i}" for i, c in enumerate(mapped))
    # A scope's values are the query's first parameters: `source` comes first in every form below.
    where = " AND ".join(f"m.{model.column(column)} = ?" for column, _ in model.scope)
    source = (
        f"SELECT CAST(m.{model.column(spec.primary_key)} AS VARCHAR) AS record_key, "
        f"{row_hash_sql(spec, model, 'm')} AS row_hash, {values} FROM {model.sql} m"
        + (f" WHERE {where}" if where else "")
    )
    state = f"SELECT record_key, row_hash, salesforce_id FROM {state_table} WHERE sync_name = ?"
    if full_resync and spec.mode != "insert":
        changed = source
    else:
        # DuckDB plans ANTI JOIN as a hash anti-join; a correlated NOT EXISTS is several times slower
        # there. Snowflake turns NOT EXISTS into an anti-join itself.
        column = "record_key" if spec.mode == "insert" else "row_hash"
        if dialect == "duckdb":
            changed = f"SELECT src.* FROM ({source}) src ANTI JOIN ({state}) st ON st.{column} = src.{column}"
        else:
            changed = (
                f"SELECT src.* FROM ({source}) src WHERE NOT EXISTS "
                f"(SELECT 1 FROM ({state}) st WHERE st.{column} = src.{column})"
            )
    materialized = "MATERIALIZED " if dialect == "duckdb" else ""
    columns = ", ".join(f"ch.v{i}" for i in range(len(mapped)))
    # The semi-join keeps the state rows of changed keys only. Joined to ch directly, the optimizer cannot
    # see that ch is small and builds its hash table over every state row (half the query's CPU).
    state_of_changed = f"{state} AND record_key IN (SELECT record_key FROM ch)"
    query = (
        f"WITH ch AS {materialized}({changed}), st AS ({state_of_changed}) "
        f"SELECT ch.record_key, ch.row_hash, "
        f"CASE WHEN st.record_key IS NULL THEN '{ADDED}' ELSE '{CHANGED}' END, st.salesforce_id, {columns} "
        f"FROM st RIGHT JOIN ch ON st.record_key = ch.record_key"
    )
    params = 1 if full_resync and spec.mode != "insert" else 2
    if spec.mode == "mirror":
        if model.scope:  # a slice cannot tell which of the sync's records left the model
            raise ValueError(f"Sync {spec.name}: a mirror sync cannot run on a scope of its model")
        nulls = ", ".join("NULL" for _ in mapped)
        query += (
            f" UNION ALL SELECT gone.record_key, gone.row_hash, '{REMOVED}', gone.salesforce_id, {nulls} "
            f"FROM ({state}) gone WHERE gone.record_key NOT IN "
            f"(SELECT CAST(m.{model.column(spec.primary_key)} AS VARCHAR) FROM {model.sql} m "
            f"WHERE m.{model.column(spec.primary_key)} IS NOT NULL)"
        )
        params += 1
    return query, params


def detect_changes(
    session: WarehouseSession, spec: SyncSpec, model: ModelRelation, state_table: str, full_resync: bool
) -> ChangeSet:
    """Run the change query; rows with a NULL key are counted and skipped, a key seen twice keeps its
    first row (the model's unique/not_null tests should stop both before a sync runs)."""
    started = time.perf_counter()
    query, params = change_query(spec, model, state_table, full_resync, session.dialect)
    with cyclic_gc_paused():
        scope = [value for _, value in model.scope]
        changes = _changes(session.fetchall(query, [*scope, *[spec.state_key] * params]))
    changes.seconds = time.perf_counter() - started
    return changes


def _changes(rows: list[tuple]) -> ChangeSet:
    result = ChangeSet()
    seen: set[str] = set()
    for row in rows:  # (record_key, row_hash, change_type, salesforce_id, *mapped values)
        record_key, change_type = row[0], row[2]
        if record_key is None:
            result.null_keys += 1
        elif record_key in seen:
            result.duplicate_keys.append(record_key)
        else:
            seen.add(record_key)
            values = () if change_type == REMOVED else row[4:]
            result.changes.append(Change(record_key, row[1], change_type, row[3], values))
    return result
