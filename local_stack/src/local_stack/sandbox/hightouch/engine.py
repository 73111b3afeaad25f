"""What a sandbox sync run does: read the model from the local DuckDB warehouse, plan the difference
from what the destination already holds (by primary key and row hash), deliver it, and report.

Each run moves through queued -> querying -> processing -> reporting -> success | warning | failed, on a
worker thread, a few `step_seconds` per stage. Tests steer runs with faults: the next run of a sync can
fail (with a message), warn (rejecting some rows), stall (until released), be cancelled or interrupted.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb

from local_stack.sandbox.hightouch.state import SandboxState, now_iso
from platform_assets import dbt_manifest, environment
from platform_assets.integrations.hightouch.sync_spec import load_sync_declarations

FaultMode = Literal["fail", "warn", "stall", "cancel", "interrupt"]
FAULT_MODES: tuple[str, ...] = ("fail", "warn", "stall", "cancel", "interrupt")
_FAULT_STATUS = {"fail": "failed", "cancel": "cancelled", "interrupt": "interrupted"}


class RunError(RuntimeError):
    """Why a run failed on its own (missing table, bad primary key); becomes the run's error text."""


@dataclass(frozen=True)
class Fault:
    mode: FaultMode
    message: str | None = None
    failed_rows: int = 1


@dataclass
class Plan:
    query_size: int
    added: dict[str, tuple[str, str]]  # key -> (row hash, payload)
    changed: dict[str, tuple[str, str]]
    removed: list[str]


class SyncEngine:
    """Runs syncs against the warehouse file and records the outcome in the state file."""

    def __init__(self, state: SandboxState, warehouse: Path, step_seconds: float = 0.2):
        self.state = state
        self.warehouse = warehouse
        self.step_seconds = step_seconds
        self._faults: dict[int, deque[Fault]] = defaultdict(deque)
        self._releases: dict[int, threading.Event] = {}
        self._sync_locks: dict[int, threading.Lock] = defaultdict(threading.Lock)
        self._stopping = threading.Event()
        self._guard = threading.Lock()

    # -- configuration ------------------------------------------------------------------------------

    def seed(self, syncs_dir: Path) -> int:
        """(Re)load the sync definitions from the platform's sync documents; returns how many."""
        env = environment.current()
        syncs = load_sync_declarations(syncs_dir, dbt_manifest.read_if_prepared())
        for sync in syncs:
            declaration = sync.declaration
            destination_id = self.state.upsert_destination(
                sync.destination_slug, declaration.destination.label, declaration.destination.kind
            )
            model_id = self.state.upsert_model(
                sync.model.name.replace("_", "-"),
                env.schema(sync.model.schema),
                sync.model.name,
                declaration.primary_key,
            )
            declared_id = int(declaration.sync_id) if declaration.sync_id else None
            self.state.upsert_sync(declared_id, sync.sync_slug, sync.name, model_id, destination_id)
        return len(syncs)

    def find_sync(self, reference: str | int) -> dict[str, Any] | None:
        """A sync by id or slug."""
        return self.state.query_one(
            "SELECT * FROM syncs WHERE CAST(id AS TEXT) = ? OR slug = ?", (str(reference), str(reference))
        )

    # -- faults (test controls) -------------------------------------------------------------------

    def add_fault(self, sync_id: int, fault: Fault) -> None:
        with self._guard:
            self._faults[sync_id].append(fault)

    def release(self, sync_id: int) -> None:
        with self._guard:
            self._releases.setdefault(sync_id, threading.Event()).set()

    def stop(self) -> None:
        self._stopping.set()
        with self._guard:
            for event in self._releases.values():
                event.set()

    # -- runs -------------------------------------------------------------------------------------

    def trigger(self, sync_id: int, full_resync: bool) -> int:
        with self._guard:
            fault = self._faults[sync_id].popleft() if self._faults[sync_id] else None
        run_id = self.state.create_run(sync_id, full_resync)
        worker = threading.Thread(
            target=self._execute, args=(sync_id, run_id, full_resync, fault), name=f"ht-run-{run_id}"
        )
        worker.daemon = True
        worker.start()
        return run_id

    def _pause(self) -> None:
        self._stopping.wait(self.step_seconds)

    def _execute(self, sync_id: int, run_id: int, full_resync: bool, fault: Fault | None) -> None:
        try:
            self._run(sync_id, run_id, full_resync, fault)
        except Exception as error:  # a sandbox bug must show up as the run's error, not a silent thread
            if not self._stopping.is_set():
                self._finish(run_id, "failed", error=f"Sandbox error: {error!r}")

    def _run(self, sync_id: int, run_id: int, full_resync: bool, fault: Fault | None) -> None:
        # Runs of one sync go one at a time, like Hightouch's: a second trigger waits in 'queued'.
        with self._sync_locks[sync_id]:
            self._pause()
            self.state.update_run(run_id, status="querying", started_at=now_iso())
            try:
                plan = self._plan(sync_id, full_resync)
            except RunError as error:
                self._finish(run_id, "failed", error=str(error))
                return
            self.state.update_run(
                run_id,
                status="processing",
                query_size=plan.query_size,
                planned_added=len(plan.added),
                planned_changed=len(plan.changed),
                planned_removed=len(plan.removed),
            )
            self._pause()
            if fault and fault.mode == "stall":
                self._stall(sync_id)
                if self._stopping.is_set():
                    return
            if fault and fault.mode in _FAULT_STATUS:
                self._fail(run_id, plan, fault)
                return
            rejected = self._rejected(plan, fault)
            self._deliver(sync_id, run_id, plan, rejected)
            self.state.update_run(run_id, status="reporting", completion_ratio=1.0)
            self._pause()
            if fault and fault.mode == "warn":
                message = fault.message or f"{len(rejected)} rows were rejected by the destination"
                self._finish(run_id, "warning", error=message)
            else:
                self._finish(run_id, "success")

    def _stall(self, sync_id: int) -> None:
        with self._guard:
            event = self._releases.setdefault(sync_id, threading.Event())
        event.wait()
        event.clear()

    def _fail(self, run_id: int, plan: Plan, fault: Fault) -> None:
        status = _FAULT_STATUS[fault.mode]
        default = {"failed": "Destination returned an error", "cancelled": "Run was cancelled"}
        self.state.update_run(
            run_id,
            failed_added=len(plan.added),
            failed_changed=len(plan.changed),
            failed_removed=len(plan.removed),
        )
        self._finish(run_id, status, error=fault.message or default.get(status, "Run was interrupted"))

    def _finish(self, run_id: int, status: str, error: str | None = None) -> None:
        self.state.update_run(run_id, status=status, finished_at=now_iso(), error=error)

    @staticmethod
    def _rejected(plan: Plan, fault: Fault | None) -> set[str]:
        if not fault or fault.mode != "warn":
            return set()
        candidates = sorted(plan.added) + sorted(plan.changed)
        return set(candidates[: max(0, fault.failed_rows)])

    # -- planning and delivery --------------------------------------------------------------------

    def _plan(self, sync_id: int, full_resync: bool) -> Plan:
        model = self.state.query_one(
            "SELECT m.schema_name, m.table_name, m.primary_key FROM syncs s "
            "JOIN models m ON m.id = s.model_id WHERE s.id = ?",
            (sync_id,),
        )
        rows = self._read_model(model["schema_name"], model["table_name"], model["primary_key"])
        previous = {} if full_resync else self.state.records(sync_id)
        added = {key: value for key, value in rows.items() if key not in previous}
        changed = {key: value for key, value in rows.items() if key in previous and previous[key] != value[0]}
        held = self.state.records(sync_id)
        removed = sorted(key for key in held if key not in rows)
        return Plan(query_size=len(rows), added=added, changed=changed, removed=removed)

    def _read_model(self, schema: str, table: str, primary_key: str) -> dict[str, tuple[str, str]]:
        """key -> (row hash, row as JSON); the file is opened read-only and closed at once."""
        if not self.warehouse.exists():
            raise RunError(
                f"Query failed: warehouse file {self.warehouse} does not exist (run the cycle first)"
            )
        # Imported here: platform_assets.warehouse pulls in dagster-snowflake (seconds of import time),
        # which would otherwise delay the sandbox's start-up and health check.
        from platform_assets.warehouse import connect_duckdb, quote_identifier

        connection = connect_duckdb(self.warehouse, read_only=True)
        try:
            cursor = connection.execute(f"SELECT * FROM {quote_identifier(schema)}.{quote_identifier(table)}")
            columns = [column[0] for column in cursor.description]
            raw_rows = cursor.fetchall()
        except duckdb.Error as error:
            raise RunError(f"Query failed: {error}") from None
        finally:
            connection.close()
        lowered = [column.lower() for column in columns]
        if primary_key.lower() not in lowered:
            raise RunError(
                f"Primary key column '{primary_key}' is not in {schema}.{table} ({', '.join(columns)})"
            )
        key_index = lowered.index(primary_key.lower())
        rows: dict[str, tuple[str, str]] = {}
        for raw in raw_rows:
            if raw[key_index] is None:
                raise RunError(f"{schema}.{table} has a row with a null primary key '{primary_key}'")
            key = str(raw[key_index])
            if key in rows:
                raise RunError(
                    f"{schema}.{table} has duplicate primary key '{primary_key}' values, e.g. '{key}'"
                )
            payload = json.dumps(dict(zip(columns, raw, strict=True)), sort_keys=True, default=str)
            rows[key] = (hashlib.sha256(payload.encode()).hexdigest(), payload)
        return rows

    def _deliver(self, sync_id: int, run_id: int, plan: Plan, rejected: set[str]) -> None:
        """Apply the plan to the destination (minus rejected rows, which the next run plans again)."""
        destination_id = self.state.query_one("SELECT destination_id FROM syncs WHERE id = ?", (sync_id,))[
            "destination_id"
        ]
        statements: list[tuple[str, tuple]] = []
        for operation, records in (("add", plan.added), ("change", plan.changed)):
            for key, (row_hash, payload) in records.items():
                if key in rejected:
                    continue
                statements.append(
                    (
                        "INSERT INTO records VALUES (?, ?, ?, ?) ON CONFLICT (sync_id, record_key) "
                        "DO UPDATE SET row_hash = excluded.row_hash, payload = excluded.payload",
                        (sync_id, key, row_hash, payload),
                    )
                )
                statements.append(
                    (
                        "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?)",
                        (run_id, sync_id, destination_id, key, operation, payload),
                    )
                )
        for key in plan.removed:
            statements.append(("DELETE FROM records WHERE sync_id = ? AND record_key = ?", (sync_id, key)))
            statements.append(
                (
                    "INSERT INTO deliveries VALUES (?, ?, ?, ?, 'remove', NULL)",
                    (run_id, sync_id, destination_id, key),
                )
            )
        self.state.transaction(statements)
        failed_added = len(rejected & plan.added.keys())
        failed_changed = len(rejected & plan.changed.keys())
        self.state.update_run(
            run_id,
            successful_added=len(plan.added) - failed_added,
            successful_changed=len(plan.changed) - failed_changed,
            successful_removed=len(plan.removed),
            failed_added=failed_added,
            failed_changed=failed_changed,
        )
