"""Sync state in the warehouse: what Salesforce has confirmed, what failed, which Bulk jobs are pending.

Tables (schema `platform_sync`, env-prefixed), one row set per sync name:

- sync_state     last confirmed version of each record: a hash of its mapped columns and the Salesforce Id
- sync_failures  records Salesforce rejected, with its error; retried every run until they succeed
- sync_pending   the records of the batches being sent (written before the Bulk job is created)
- sync_jobs      Bulk job ids per batch, recorded as soon as Salesforce creates the job (crash recovery)
- sync_outcomes  scratch rows while a batch's results are applied
- sync_runs      one audit row per run
- sync_keys      (scratch) the changed keys conflict detection joins on
- sync_conflicts fields changed on both sides (conflict policies): both values, both times, the decision

sync_state.sent_values (JSON, only for syncs with conflict policies) holds what the platform last wrote
per field and when it sent it: "changed in Salesforce since the platform last wrote it" compares with it.

All SQL here runs on DuckDB and Snowflake alike; the two differences (hash type, bulk insert) are
dispatched on `session.dialect`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from platform_assets.warehouse import Warehouse, WarehouseSession, quote_identifier, transaction

ADDED, CHANGED, REMOVED = "added", "changed", "removed"
CHANGE_TYPES = (ADDED, CHANGED, REMOVED)

_HASH_TYPE = {"duckdb": "UBIGINT", "snowflake": "NUMBER(20,0)"}


def utcnow() -> datetime:
    """Naive UTC, the form both warehouses store in TIMESTAMP columns."""
    return datetime.now(UTC).replace(tzinfo=None)


def _tables(hash_type: str) -> dict[str, str]:
    return {
        "sync_state": f"""sync_name VARCHAR NOT NULL, record_key VARCHAR NOT NULL, row_hash {hash_type},
            salesforce_id VARCHAR, synced_at TIMESTAMP, sent_values VARCHAR""",
        "sync_failures": f"""sync_name VARCHAR NOT NULL, record_key VARCHAR NOT NULL, row_hash {hash_type},
            change_type VARCHAR, error VARCHAR, first_failed_at TIMESTAMP, last_failed_at TIMESTAMP,
            attempts INTEGER""",
        "sync_pending": f"""sync_name VARCHAR NOT NULL, run_id VARCHAR NOT NULL, batch_no INTEGER,
            record_key VARCHAR, row_hash {hash_type}, change_type VARCHAR, salesforce_id VARCHAR,
            match_value VARCHAR, sent_values VARCHAR""",
        "sync_jobs": """sync_name VARCHAR NOT NULL, run_id VARCHAR NOT NULL, batch_no INTEGER,
            job_id VARCHAR NOT NULL, operation VARCHAR, status VARCHAR, created_at TIMESTAMP,
            finished_at TIMESTAMP""",
        "sync_outcomes": f"""sync_name VARCHAR NOT NULL, token VARCHAR NOT NULL, record_key VARCHAR,
            row_hash {hash_type}, change_type VARCHAR, salesforce_id VARCHAR, status VARCHAR,
            error VARCHAR, sent_values VARCHAR""",
        "sync_runs": """run_id VARCHAR, sync_name VARCHAR, sobject VARCHAR, mode VARCHAR, status VARCHAR,
            full_resync BOOLEAN, started_at TIMESTAMP, finished_at TIMESTAMP, duration_seconds DOUBLE,
            planned_added INTEGER, planned_changed INTEGER, planned_removed INTEGER,
            succeeded_added INTEGER, succeeded_changed INTEGER, succeeded_removed INTEGER,
            failed_added INTEGER, failed_changed INTEGER, failed_removed INTEGER,
            unprocessed INTEGER, recovered INTEGER, job_ids VARCHAR, api_calls INTEGER, error VARCHAR,
            conflicts INTEGER""",
        "sync_keys": """sync_name VARCHAR NOT NULL, run_id VARCHAR NOT NULL, record_key VARCHAR,
            salesforce_id VARCHAR""",
        "sync_conflicts": """sync_name VARCHAR NOT NULL, run_id VARCHAR NOT NULL, record_key VARCHAR,
            salesforce_id VARCHAR, field VARCHAR, policy VARCHAR, warehouse_value VARCHAR,
            salesforce_value VARCHAR, last_sent_value VARCHAR, warehouse_changed_at TIMESTAMP,
            salesforce_changed_at TIMESTAMP, decision VARCHAR, sent_value VARCHAR, detected_at TIMESTAMP""",
    }


# Columns added after the first release: CREATE TABLE IF NOT EXISTS leaves older tables without them.
_ADDED_COLUMNS = (
    *((name, "sent_values VARCHAR") for name in ("sync_state", "sync_pending", "sync_outcomes")),
    ("sync_runs", "conflicts INTEGER"),
)


# Columns written in bulk, with the DuckDB types read_json needs.
_PENDING_COLUMNS = (
    ("sync_name", "VARCHAR"),
    ("run_id", "VARCHAR"),
    ("batch_no", "INTEGER"),
    ("record_key", "VARCHAR"),
    ("row_hash", "UBIGINT"),
    ("change_type", "VARCHAR"),
    ("salesforce_id", "VARCHAR"),
    ("match_value", "VARCHAR"),
    ("sent_values", "VARCHAR"),
)
_OUTCOME_COLUMNS = (
    ("sync_name", "VARCHAR"),
    ("token", "VARCHAR"),
    ("record_key", "VARCHAR"),
    ("row_hash", "UBIGINT"),
    ("change_type", "VARCHAR"),
    ("salesforce_id", "VARCHAR"),
    ("status", "VARCHAR"),
    ("error", "VARCHAR"),
    ("sent_values", "VARCHAR"),
)
_KEY_COLUMNS = (
    ("sync_name", "VARCHAR"),
    ("run_id", "VARCHAR"),
    ("record_key", "VARCHAR"),
    ("salesforce_id", "VARCHAR"),
)
_CONFLICT_COLUMNS = (
    ("sync_name", "VARCHAR"),
    ("run_id", "VARCHAR"),
    ("record_key", "VARCHAR"),
    ("salesforce_id", "VARCHAR"),
    ("field", "VARCHAR"),
    ("policy", "VARCHAR"),
    ("warehouse_value", "VARCHAR"),
    ("salesforce_value", "VARCHAR"),
    ("last_sent_value", "VARCHAR"),
    ("warehouse_changed_at", "TIMESTAMP"),
    ("salesforce_changed_at", "TIMESTAMP"),
    ("decision", "VARCHAR"),
    ("sent_value", "VARCHAR"),
    ("detected_at", "TIMESTAMP"),
)


@dataclass(frozen=True)
class PendingRecord:
    run_id: str
    batch_no: int
    record_key: str
    row_hash: int | None
    change_type: str
    salesforce_id: str | None
    match_value: str
    sent_values: str | None = None
    """JSON of what this record's mapped fields were last written as (syncs with conflict policies)."""


@dataclass(frozen=True)
class Outcome:
    record_key: str
    row_hash: int | None
    change_type: str
    salesforce_id: str | None
    status: str
    """succeeded | failed"""
    error: str | None = None
    sent_values: str | None = None


@dataclass(frozen=True)
class Conflict:
    """One field changed in Salesforce since the platform wrote it, disagreeing with the warehouse."""

    record_key: str
    salesforce_id: str
    field: str
    policy: str
    warehouse_value: str | None
    salesforce_value: str | None
    last_sent_value: str | None
    warehouse_changed_at: datetime | None
    salesforce_changed_at: datetime | None
    decision: str
    """warehouse (its value is written) | salesforce (left alone) | merged (a custom rule's own value)"""
    sent_value: str | None


@dataclass(frozen=True)
class ConflictSummary:
    count: int
    by_decision: dict[str, int]
    by_field: dict[str, int]
    sample: list[dict[str, Any]]


@dataclass(frozen=True)
class FailureSummary:
    count: int
    by_change_type: dict[str, int]
    sample: list[dict[str, Any]]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def bulk_insert(
    session: WarehouseSession, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert many rows quickly: DuckDB scans an Arrow table in place (binding Python values row by row
    is ~1 ms per row there); Snowflake's connector binds arrays for executemany."""
    if not rows:
        return
    names = [name for name, _ in columns]
    if session.dialect != "duckdb":
        placeholders = ", ".join("?" for _ in names)
        session.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})", rows)
        return
    import pyarrow  # only the DuckDB path needs it

    types = {
        "VARCHAR": pyarrow.string(),
        "INTEGER": pyarrow.int32(),
        "UBIGINT": pyarrow.uint64(),
        "TIMESTAMP": pyarrow.timestamp("us"),
    }
    arrays = [
        pyarrow.array([row[i] for row in rows], type=types[kind]) for i, (_, kind) in enumerate(columns)
    ]
    batch = pyarrow.table(arrays, names=names)
    connection = session.raw  # type: ignore[attr-defined]
    connection.register("_platform_bulk_rows", batch)
    try:
        connection.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT * FROM _platform_bulk_rows")
    finally:
        connection.unregister("_platform_bulk_rows")


class SyncStore:
    """The sync tables of one warehouse schema. Each method runs in the pinned session if there is one
    (a sync run pins one for its whole length, so DuckDB checkpoints once, when it closes), else in a
    short session of its own."""

    def __init__(self, warehouse: Warehouse, schema: str) -> None:
        self.warehouse = warehouse
        self.schema = schema
        self._schema_sql = quote_identifier(schema)
        self._pinned: WarehouseSession | None = None

    def table(self, name: str) -> str:
        return f"{self._schema_sql}.{quote_identifier(name)}"

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Share one warehouse session among consecutive steps (opening the DuckDB file and checkpointing
        on close is not free; a Snowflake session is a login). A sync run pins it for its whole length,
        Salesforce calls included: a local reader of the DuckDB file waits (`connect_duckdb` retries)."""
        if self._pinned is not None:
            yield
            return
        with self.warehouse.session() as session:
            self._pinned = session
            try:
                yield
            finally:
                self._pinned = None

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[WarehouseSession]:
        if self._pinned is not None:
            yield self._pinned
            return
        with self.warehouse.session(read_only=read_only) as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[WarehouseSession]:
        with self.session() as session, transaction(session) as tx:
            yield tx

    def ensure_tables(self, session: WarehouseSession) -> None:
        session.execute(f"CREATE SCHEMA IF NOT EXISTS {self._schema_sql}")
        for name, columns in _tables(_HASH_TYPE[session.dialect]).items():
            session.execute(f"CREATE TABLE IF NOT EXISTS {self.table(name)} ({columns})")
        for name, column in _ADDED_COLUMNS:
            session.execute(f"ALTER TABLE {self.table(name)} ADD COLUMN IF NOT EXISTS {column}")

    # ------------------------------------------------------------------ pending batches and jobs

    def write_pending(self, sync_name: str, records: Sequence[PendingRecord]) -> None:
        rows = [
            (
                sync_name,
                r.run_id,
                r.batch_no,
                r.record_key,
                r.row_hash,
                r.change_type,
                r.salesforce_id,
                r.match_value,
                r.sent_values,
            )
            for r in records
        ]
        with self.session() as session:
            bulk_insert(session, self.table("sync_pending"), _PENDING_COLUMNS, rows)

    def record_job(self, sync_name: str, run_id: str, batch_no: int, job_id: str, operation: str) -> None:
        """Called from the client's on_job_created, before the data is uploaded."""
        with self.session() as session:
            session.execute(
                f"INSERT INTO {self.table('sync_jobs')} (sync_name, run_id, batch_no, job_id, operation, "
                "status, created_at) VALUES (?, ?, ?, ?, ?, 'open', ?)",
                [sync_name, run_id, batch_no, job_id, operation, utcnow()],
            )

    def open_jobs(self, sync_name: str) -> dict[tuple[str, int], list[tuple[str, str]]]:
        """(run_id, batch_no) -> [(job_id, operation)] of jobs whose results were never applied."""
        with self.session() as session:
            rows = session.fetchall(
                f"SELECT run_id, batch_no, job_id, operation FROM {self.table('sync_jobs')} "
                "WHERE sync_name = ? AND status = 'open' ORDER BY created_at, job_id",
                [sync_name],
            )
        jobs: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for run_id, batch_no, job_id, operation in rows:
            jobs.setdefault((run_id, batch_no), []).append((job_id, operation))
        return jobs

    def pending_records(self, sync_name: str, run_id: str, batch_no: int) -> list[PendingRecord]:
        with self.session() as session:
            rows = session.fetchall(
                "SELECT run_id, batch_no, record_key, row_hash, change_type, salesforce_id, match_value, "
                f"sent_values FROM {self.table('sync_pending')} "
                "WHERE sync_name = ? AND run_id = ? AND batch_no = ?",
                [sync_name, run_id, batch_no],
            )
        return [PendingRecord(*row) for row in rows]

    def clear_pending(self, sync_name: str) -> None:
        """Forget batches never handed to Salesforce (no job): their rows are detected again."""
        with self.session() as session:
            session.execute(f"DELETE FROM {self.table('sync_pending')} WHERE sync_name = ?", [sync_name])
            session.execute(f"DELETE FROM {self.table('sync_outcomes')} WHERE sync_name = ?", [sync_name])
            session.execute(f"DELETE FROM {self.table('sync_keys')} WHERE sync_name = ?", [sync_name])

    # ------------------------------------------------------------------ results

    def apply_outcomes(
        self, sync_name: str, run_id: str, batch_no: int, job_ids: Sequence[str], outcomes: Sequence[Outcome]
    ) -> None:
        """In one transaction: advance state for confirmed records, record failures, close the batch."""
        token = f"{run_id}:{batch_no}"
        now = utcnow()
        rows = [
            (
                sync_name,
                token,
                o.record_key,
                o.row_hash,
                o.change_type,
                o.salesforce_id,
                o.status,
                o.error,
                o.sent_values,
            )
            for o in outcomes
        ]
        state, failures, scratch = (
            self.table("sync_state"),
            self.table("sync_failures"),
            self.table("sync_outcomes"),
        )
        mine = f"SELECT record_key FROM {scratch} WHERE sync_name = ? AND token = ?"
        with self.transaction() as s:
            bulk_insert(s, scratch, _OUTCOME_COLUMNS, rows)
            s.execute(
                f"DELETE FROM {state} WHERE sync_name = ? "
                f"AND record_key IN ({mine} AND status = 'succeeded')",
                [sync_name, sync_name, token],
            )
            s.execute(
                f"INSERT INTO {state} "
                "(sync_name, record_key, row_hash, salesforce_id, synced_at, sent_values) "
                f"SELECT sync_name, record_key, row_hash, salesforce_id, ?, sent_values FROM {scratch} "
                f"WHERE sync_name = ? AND token = ? AND status = 'succeeded' AND change_type <> '{REMOVED}'",
                [now, sync_name, token],
            )
            s.execute(
                f"UPDATE {failures} AS f SET error = o.error, row_hash = o.row_hash, "
                "change_type = o.change_type, last_failed_at = ?, attempts = f.attempts + 1 "
                f"FROM {scratch} AS o WHERE f.sync_name = o.sync_name AND f.record_key = o.record_key "
                "AND o.sync_name = ? AND o.token = ? AND o.status = 'failed'",
                [now, sync_name, token],
            )
            s.execute(
                f"INSERT INTO {failures} (sync_name, record_key, row_hash, change_type, error, "
                "first_failed_at, last_failed_at, attempts) "
                "SELECT o.sync_name, o.record_key, o.row_hash, o.change_type, o.error, ?, ?, 1 "
                f"FROM {scratch} o "
                "WHERE o.sync_name = ? AND o.token = ? AND o.status = 'failed' AND NOT EXISTS "
                f"(SELECT 1 FROM {failures} f "
                "WHERE f.sync_name = o.sync_name AND f.record_key = o.record_key)",
                [now, now, sync_name, token],
            )
            s.execute(
                f"DELETE FROM {failures} WHERE sync_name = ? "
                f"AND record_key IN ({mine} AND status = 'succeeded')",
                [sync_name, sync_name, token],
            )
            s.execute(f"DELETE FROM {scratch} WHERE sync_name = ? AND token = ?", [sync_name, token])
            s.execute(
                f"DELETE FROM {self.table('sync_pending')} "
                "WHERE sync_name = ? AND run_id = ? AND batch_no = ?",
                [sync_name, run_id, batch_no],
            )
            for job_id in job_ids:
                s.execute(
                    f"UPDATE {self.table('sync_jobs')} SET status = 'done', finished_at = ? "
                    "WHERE sync_name = ? AND job_id = ?",
                    [now, sync_name, job_id],
                )

    # ------------------------------------------------------------------ reading

    def failure_summary(self, sync_name: str, sample_size: int = 5) -> FailureSummary:
        table = self.table("sync_failures")
        with self.session() as session:
            counts = session.fetchall(
                f"SELECT change_type, COUNT(*) FROM {table} WHERE sync_name = ? GROUP BY change_type",
                [sync_name],
            )
            sample = session.fetchall(
                f"SELECT record_key, change_type, error, attempts, last_failed_at FROM {table} "
                "WHERE sync_name = ? ORDER BY last_failed_at DESC, record_key LIMIT ?",
                [sync_name, sample_size],
            )
        by_type = {change_type: int(n) for change_type, n in counts}
        return FailureSummary(
            count=sum(by_type.values()),
            by_change_type=by_type,
            sample=[
                {
                    "record_key": key,
                    "change_type": change_type,
                    "error": error,
                    "attempts": int(attempts),
                    "last_failed_at": str(last),
                }
                for key, change_type, error, attempts, last in sample
            ],
        )

    # ------------------------------------------------------------------ conflicts

    @contextmanager
    def scratch_keys(
        self, sync_name: str, run_id: str, rows: Sequence[tuple[str, str | None]]
    ) -> Iterator[str]:
        """(record_key, salesforce_id) rows to join on, as a subquery; removed afterwards. Thousands of
        keys as `IN (?, ...)` parameters are slow to bind on DuckDB; a bulk-inserted table joins at once."""
        table = self.table("sync_keys")
        with self.session() as session:
            bulk_insert(
                session, table, _KEY_COLUMNS, [(sync_name, run_id, key, sf_id) for key, sf_id in rows]
            )
        try:
            yield (
                f"(SELECT record_key, salesforce_id FROM {table} "
                f"WHERE sync_name = {_literal(sync_name)} AND run_id = {_literal(run_id)})"
            )
        finally:
            with self.session() as session:
                session.execute(
                    f"DELETE FROM {table} WHERE sync_name = ? AND run_id = ?", [sync_name, run_id]
                )

    def sent_values(self, sync_name: str, keys: str) -> dict[str, str]:
        """record_key -> the JSON of what the platform last wrote, for the records of `keys` that have it."""
        with self.session() as session:
            rows = session.fetchall(
                f"SELECT record_key, sent_values FROM {self.table('sync_state')} WHERE sync_name = ? "
                f"AND sent_values IS NOT NULL AND record_key IN (SELECT record_key FROM {keys} k)",
                [sync_name],
            )
        return dict(rows)

    def recorded_conflicts(
        self, sync_name: str, keys: str
    ) -> dict[tuple[str, str], tuple[str | None, str | None, str]]:
        """(record_key, field) -> (warehouse_value, salesforce_value, decision) last recorded for it."""
        latest: dict[tuple[str, str], tuple[Any, tuple[str | None, str | None, str]]] = {}
        with self.session() as session:
            rows = session.fetchall(
                "SELECT record_key, field, warehouse_value, salesforce_value, decision, detected_at "
                f"FROM {self.table('sync_conflicts')} WHERE sync_name = ? "
                f"AND record_key IN (SELECT record_key FROM {keys} k)",
                [sync_name],
            )
        for key, field, warehouse, salesforce, decision, at in rows:
            if (key, field) not in latest or at >= latest[key, field][0]:
                latest[key, field] = (at, (warehouse, salesforce, decision))
        return {where: found for where, (_, found) in latest.items()}

    def record_conflicts(self, sync_name: str, run_id: str, conflicts: Sequence[Conflict]) -> None:
        now = utcnow()
        rows = [
            (
                sync_name,
                run_id,
                c.record_key,
                c.salesforce_id,
                c.field,
                c.policy,
                c.warehouse_value,
                c.salesforce_value,
                c.last_sent_value,
                c.warehouse_changed_at,
                c.salesforce_changed_at,
                c.decision,
                c.sent_value,
                now,
            )
            for c in conflicts
        ]
        with self.session() as session:
            bulk_insert(session, self.table("sync_conflicts"), _CONFLICT_COLUMNS, rows)

    def conflict_summary(self, sync_name: str, run_id: str, sample_size: int = 5) -> ConflictSummary:
        """The conflicts one run found: counts by decision and by field, and a sample with both values."""
        table = self.table("sync_conflicts")
        mine = "WHERE sync_name = ? AND run_id = ?"
        with self.session() as session:
            decisions = session.fetchall(
                f"SELECT decision, COUNT(*) FROM {table} {mine} GROUP BY decision", [sync_name, run_id]
            )
            fields = session.fetchall(
                f"SELECT field, COUNT(*) FROM {table} {mine} GROUP BY field", [sync_name, run_id]
            )
            sample = session.fetchall(
                f"SELECT record_key, field, policy, decision, warehouse_value, salesforce_value, "
                f"warehouse_changed_at, salesforce_changed_at FROM {table} {mine} "
                "ORDER BY record_key, field LIMIT ?",
                [sync_name, run_id, sample_size],
            )
        by_decision = {str(d): int(n) for d, n in decisions}
        names = ("record_key", "field", "policy", "decision", "warehouse_value", "salesforce_value")
        return ConflictSummary(
            count=sum(by_decision.values()),
            by_decision=by_decision,
            by_field={str(f): int(n) for f, n in fields},
            sample=[
                {
                    **dict(zip(names, row[:6], strict=True)),
                    "warehouse_changed_at": str(row[6]) if row[6] is not None else None,
                    "salesforce_changed_at": str(row[7]) if row[7] is not None else None,
                }
                for row in sample
            ],
        )

    def state_count(self, sync_name: str) -> int:
        with self.session() as session:
            row = session.fetchone(
                f"SELECT COUNT(*) FROM {self.table('sync_state')} WHERE sync_name = ?", [sync_name]
            )
        return int(row[0]) if row else 0

    def record_run(self, row: dict[str, Any]) -> None:
        columns = list(row)
        with self.session() as session:
            session.execute(
                f"INSERT INTO {self.table('sync_runs')} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                [row[c] for c in columns],
            )
