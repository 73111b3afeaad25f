"""The sandbox's memory in one SQLite file: syncs, destinations, runs, and what each destination holds.

Kept in a file (not in memory) so a restarted sandbox still knows what it delivered last time, which is
what makes a second run with an unchanged model plan zero changes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS destinations (
    id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL, type TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL, schema_name TEXT NOT NULL,
    table_name TEXT NOT NULL, primary_key TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS syncs (
    id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL, model_id INTEGER NOT NULL,
    destination_id INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sync_id INTEGER NOT NULL, status TEXT NOT NULL,
    full_resync INTEGER NOT NULL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
    query_size INTEGER, planned_added INTEGER NOT NULL DEFAULT 0, planned_changed INTEGER NOT NULL DEFAULT 0,
    planned_removed INTEGER NOT NULL DEFAULT 0, successful_added INTEGER NOT NULL DEFAULT 0,
    successful_changed INTEGER NOT NULL DEFAULT 0, successful_removed INTEGER NOT NULL DEFAULT 0,
    failed_added INTEGER NOT NULL DEFAULT 0, failed_changed INTEGER NOT NULL DEFAULT 0,
    failed_removed INTEGER NOT NULL DEFAULT 0, completion_ratio REAL NOT NULL DEFAULT 0, error TEXT);
CREATE TABLE IF NOT EXISTS run_events (
    run_id INTEGER NOT NULL, status TEXT NOT NULL, at TEXT NOT NULL);
-- What the destination holds for each sync after its last run (key + row hash + the row itself).
CREATE TABLE IF NOT EXISTS records (
    sync_id INTEGER NOT NULL, record_key TEXT NOT NULL, row_hash TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (sync_id, record_key));
-- Every record each run delivered, per destination: operation add | change | remove.
CREATE TABLE IF NOT EXISTS deliveries (
    run_id INTEGER NOT NULL, sync_id INTEGER NOT NULL, destination_id INTEGER NOT NULL,
    record_key TEXT NOT NULL, operation TEXT NOT NULL, payload TEXT);
"""

RUN_COLUMNS = (
    "id, sync_id, status, full_resync, created_at, started_at, finished_at, query_size, planned_added, "
    "planned_changed, planned_removed, successful_added, successful_changed, successful_removed, "
    "failed_added, failed_changed, failed_removed, completion_ratio, error"
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SandboxState:
    """Thread-safe access to the state file (one connection, one lock: every statement is short)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, params).fetchall()]

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the last inserted row id."""
        with self._lock:
            return int(self._db.execute(sql, params).lastrowid or 0)

    def transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- configuration (seeded from the platform's sync documents) --------------------------------

    def upsert_destination(self, slug: str, name: str, kind: str) -> int:
        now = now_iso()
        self.execute(
            "INSERT INTO destinations (slug, name, type, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (slug) DO UPDATE SET name = excluded.name, type = excluded.type, "
            "updated_at = excluded.updated_at",
            (slug, name, kind, now, now),
        )
        return int(self.query_one("SELECT id FROM destinations WHERE slug = ?", (slug,))["id"])

    def upsert_model(self, slug: str, schema: str, table: str, primary_key: str) -> int:
        now = now_iso()
        self.execute(
            "INSERT INTO models (slug, name, schema_name, table_name, primary_key, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (slug) DO UPDATE SET "
            "schema_name = excluded.schema_name, "
            "table_name = excluded.table_name, primary_key = excluded.primary_key, "
            "updated_at = excluded.updated_at",
            (slug, table, schema, table, primary_key, now, now),
        )
        return int(self.query_one("SELECT id FROM models WHERE slug = ?", (slug,))["id"])

    def upsert_sync(
        self, sync_id: int | None, slug: str, name: str, model_id: int, destination_id: int
    ) -> int:
        """Keep the id a slug already has (Hightouch assigns ids once); use a declared id when given."""
        now = now_iso()
        existing = self.query_one("SELECT id FROM syncs WHERE slug = ?", (slug,))
        if existing and (sync_id is None or existing["id"] == sync_id):
            self.execute(
                "UPDATE syncs SET name = ?, model_id = ?, destination_id = ?, updated_at = ? WHERE id = ?",
                (name, model_id, destination_id, now, existing["id"]),
            )
            return int(existing["id"])
        if existing:
            self.execute("DELETE FROM syncs WHERE id = ?", (existing["id"],))
        return self.execute(
            "INSERT INTO syncs (id, slug, name, model_id, destination_id, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sync_id, slug, name, model_id, destination_id, now, now),
        )

    # -- runs ---------------------------------------------------------------------------------------

    def create_run(self, sync_id: int, full_resync: bool) -> int:
        now = now_iso()
        run_id = self.execute(
            "INSERT INTO runs (sync_id, status, full_resync, created_at) VALUES (?, 'queued', ?, ?)",
            (sync_id, int(full_resync), now),
        )
        self.execute("INSERT INTO run_events (run_id, status, at) VALUES (?, 'queued', ?)", (run_id, now))
        return run_id

    def update_run(self, run_id: int, **fields: Any) -> None:
        status = fields.get("status")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), run_id))
        if status:
            self.execute(
                "INSERT INTO run_events (run_id, status, at) VALUES (?, ?, ?)", (run_id, status, now_iso())
            )

    def run(self, run_id: int) -> dict[str, Any] | None:
        return self.query_one(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))

    def records(self, sync_id: int) -> dict[str, str]:
        rows = self.query("SELECT record_key, row_hash FROM records WHERE sync_id = ?", (sync_id,))
        return {row["record_key"]: row["row_hash"] for row in rows}
