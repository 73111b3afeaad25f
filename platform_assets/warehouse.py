"""The warehouse as the platform's own Python code sees it: DuckDB locally, Snowflake in ci and prod.

dbt and Meltano reach the warehouse through their own adapters; this resource serves the platform's own
SQL (sync state and change detection, reconciliation counts, the cycle report). Both backends are used
through one small session API with `?` placeholders, so callers write one SQL string per dialect at most.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

import dagster as dg
import duckdb

Dialect = Literal["duckdb", "snowflake"]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")

# DuckDB lets one process write a file; another writer gets this error until the first one closes it.
_LOCK_ERROR = "Could not set lock on file"


def quote_identifier(name: str) -> str:
    """Quote an identifier that comes from configuration, refusing anything that is not a plain name."""
    if not _IDENTIFIER.match(name):
        raise ValueError(
            f"{name!r} is not a valid warehouse identifier: use letters, digits, '_' or '$', "
            "starting with a letter or '_'."
        )
    return f'"{name}"'


class WarehouseSession(Protocol):
    dialect: Dialect

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]: ...
    def fetchone(self, sql: str, params: Sequence[Any] | None = None) -> tuple | None: ...


class _CursorSession:
    """A WarehouseSession over any DB-API connection that takes `?` placeholders."""

    def __init__(self, connection: Any, dialect: Dialect):
        self._connection = connection
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self._connection.cursor().execute(sql, params or [])

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._connection.cursor().executemany(sql, rows)

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        cursor = self._connection.cursor()
        cursor.execute(sql, params or [])
        return [tuple(row) for row in cursor.fetchall()]

    def fetchone(self, sql: str, params: Sequence[Any] | None = None) -> tuple | None:
        cursor = self._connection.cursor()
        cursor.execute(sql, params or [])
        row = cursor.fetchone()
        return tuple(row) if row is not None else None

    @property
    def raw(self) -> Any:
        """The underlying connection, for bulk paths (DuckDB's Arrow/relations, Snowflake's write_pandas)."""
        return self._connection


def connect_duckdb(path: Path, *, read_only: bool = False, wait_seconds: float = 120.0):
    """Open the DuckDB file, waiting while another process holds the writer lock.

    Dagster's `warehouse` pool keeps local writers from overlapping; the wait covers readers and the
    short moments where a sandbox or the report reads the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only and path.exists())
        except duckdb.IOException as error:
            if _LOCK_ERROR not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class _SingleConnection:
    """Runs every statement on the DuckDB connection itself: the shared session opens a new cursor per
    statement, and a DuckDB cursor is a separate connection, so BEGIN/COMMIT would not span them."""

    def __init__(self, session: WarehouseSession) -> None:
        self.dialect = session.dialect
        self._connection = session.raw  # type: ignore[attr-defined]

    @property
    def raw(self) -> Any:
        return self._connection

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self._connection.execute(sql, params or [])

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._connection.executemany(sql, rows)

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return [tuple(row) for row in self._connection.execute(sql, params or []).fetchall()]

    def fetchone(self, sql: str, params: Sequence[Any] | None = None) -> tuple | None:
        row = self._connection.execute(sql, params or []).fetchone()
        return tuple(row) if row is not None else None


@contextmanager
def transaction(session: WarehouseSession) -> Iterator[WarehouseSession]:
    """BEGIN ... COMMIT (ROLLBACK on error) on one session; on DuckDB every statement then runs on the
    connection itself, since a cursor is a separate connection."""
    tx = _SingleConnection(session) if session.dialect == "duckdb" else session
    tx.execute("BEGIN TRANSACTION")
    try:
        yield tx
    except BaseException:
        tx.execute("ROLLBACK")
        raise
    tx.execute("COMMIT")


class DuckDBWarehouse(dg.ConfigurableResource):
    """The local warehouse: one DuckDB file."""

    path: str

    @property
    def dialect(self) -> Dialect:
        return "duckdb"

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[_CursorSession]:
        connection = connect_duckdb(Path(self.path), read_only=read_only)
        try:
            yield _CursorSession(connection, "duckdb")
        finally:
            connection.close()


class SnowflakeWarehouse(dg.ConfigurableResource):
    """The ci/prod warehouse, through dagster-snowflake's SnowflakeResource (qmark placeholders, like DuckDB).

    dagster_snowflake is imported on first use only: importing it costs ~13 s of CPU (Snowpark and
    friends), which local processes and sandboxes should never pay.
    """

    account: str
    user: str
    password: str
    role: str
    warehouse: str
    database: str

    @property
    def dialect(self) -> Dialect:
        return "snowflake"

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[_CursorSession]:
        from dagster_snowflake import SnowflakeResource

        snowflake = SnowflakeResource(
            account=self.account,
            user=self.user,
            password=self.password,
            role=self.role,
            warehouse=self.warehouse,
            database=self.database,
            additional_snowflake_connection_args={"paramstyle": "qmark"},
        )
        with snowflake.get_connection() as connection:
            yield _CursorSession(connection, "snowflake")


class Warehouse(Protocol):
    """What the platform's own code asks of the `warehouse` resource, whichever backend serves it."""

    @property
    def dialect(self) -> Dialect: ...

    def session(self, read_only: bool = False) -> AbstractContextManager[_CursorSession]: ...
