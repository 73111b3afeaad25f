"""One sync run: check the mapping, recover jobs a crashed run left, detect changes, send them through
Bulk API 2.0, and advance state only for what Salesforce confirmed.

Order matters for safety:
1. `describe` validates the mapping before any data leaves the warehouse.
2. Jobs recorded by an earlier run (sync_jobs 'open') are read back with `job_results` and applied, so
   records Salesforce already created are in state before changes are detected (no duplicate inserts).
3. Each batch's records are written to sync_pending, then the Bulk job id is recorded the moment the job
   is created (`on_job_created`, before the upload), then results are applied in one transaction.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from platform_assets.integrations.salesforce.changes import (
    NULL,
    Change,
    ChangeSet,
    ModelRelation,
    cyclic_gc_paused,
    detect_changes,
    resolve_model,
    wire_value,
)
from platform_assets.integrations.salesforce.client import IngestResult, SalesforceClient, SalesforceError
from platform_assets.integrations.salesforce.conflicts import ConflictResolver
from platform_assets.integrations.salesforce.sync_spec import SyncSpec
from platform_assets.integrations.salesforce.sync_state import (
    ADDED,
    CHANGE_TYPES,
    CHANGED,
    REMOVED,
    Outcome,
    PendingRecord,
    SyncStore,
    utcnow,
)
from platform_assets.warehouse import Warehouse, WarehouseSession

log = logging.getLogger(__name__)

# Deleting a record that is already gone is the outcome mirror mode wants.
_ALREADY_DELETED = ("ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY")
_LOOKUP_CHUNK = 200  # values per SOQL IN (...) list, well under SOQL's 100k-character limit


class SyncMappingError(ValueError):
    """The mapping does not fit the sObject's describe; raised before any data is sent."""


class SyncIncomplete(RuntimeError):
    """A Bulk job ended Failed/Aborted; its records stay 'changed' and are sent again next run."""

    def __init__(self, message: str, report: SyncReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class SyncReport:
    sync_name: str
    sobject: str
    mode: str
    run_id: str
    full_resync: bool
    planned: Counter = field(default_factory=Counter)
    sent: Counter = field(default_factory=Counter)
    succeeded: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    unprocessed: Counter = field(default_factory=Counter)
    recovered: int = 0
    """Records confirmed from Bulk jobs an interrupted earlier run left pending."""
    job_ids: list[str] = field(default_factory=list)
    job_errors: dict[str, str] = field(default_factory=dict)
    failure_sample: list[dict[str, str]] = field(default_factory=list)
    skipped_null_keys: int = 0
    skipped_duplicate_keys: list[str] = field(default_factory=list)
    api_calls: int = 0
    api_usage: dict[str, Any] = field(default_factory=dict)
    detection_seconds: float = 0.0
    duration_seconds: float = 0.0
    salesforce_url: str = ""
    conflicts: Counter = field(default_factory=Counter)
    """Conflicts this run found, by decision (warehouse, salesforce, merged)."""
    conflict_sample: list[dict[str, Any]] = field(default_factory=list)

    def audit_row(self, status: str, started_at: datetime, error: str | None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "run_id": self.run_id,
            "sync_name": self.sync_name,
            "sobject": self.sobject,
            "mode": self.mode,
            "status": status,
            "full_resync": self.full_resync,
            "started_at": started_at,
            "finished_at": utcnow(),
            "duration_seconds": round(self.duration_seconds, 3),
        }
        for name, counter in (
            ("planned", self.planned),
            ("succeeded", self.succeeded),
            ("failed", self.failed),
        ):
            for change_type in CHANGE_TYPES:
                row[f"{name}_{change_type}"] = int(counter[change_type])
        row.update(
            unprocessed=int(sum(self.unprocessed.values())),
            recovered=self.recovered,
            job_ids=",".join(self.job_ids),
            api_calls=self.api_calls,
            error=error[:2000] if error else None,
            conflicts=int(sum(self.conflicts.values())),
        )
        return row


# ---------------------------------------------------------------------------- mapping vs describe


def validate_mapping(spec: SyncSpec, describe: Mapping[str, Any]) -> None:
    """Every mapped field exists on the sObject and can be written by this mode; all problems at once."""
    fields = {f["name"].lower(): f for f in describe.get("fields", [])}
    relations = {str(f.get("relationshipName") or "").lower(): f for f in fields.values()}
    problems: list[str] = []
    where = f"sync {spec.name} ({spec.source_file})"
    external = (spec.external_id_field or "").lower()
    for column, target in spec.mapping.items():
        relation, _, _ = target.partition(".")
        described = relations.get(relation.lower()) if "." in target else fields.get(target.lower())
        if described is None:
            problems.append(
                f"{where}: field {target} (mapped from column {column}) does not exist on sObject "
                f"{spec.object}. Fix the mapping: use a field API name from the {spec.object} describe."
            )
            continue
        if target.lower() == "id" and spec.mode == "update":
            continue
        lookup_only = spec.mode == "update" and target.lower() == external
        needs = []
        if spec.mode in ("insert", "upsert", "mirror"):
            needs.append("createable")
        if spec.mode in ("upsert", "mirror", "update") and target.lower() != external and not lookup_only:
            needs.append("updateable")
        for flag in needs:
            if not described.get(flag, False):
                problems.append(
                    f"{where}: field {target} (mapped from column {column}) is not {flag} on sObject "
                    f"{spec.object}, so mode {spec.mode} cannot write it. Remove it from the mapping."
                )
    if spec.external_id_field:
        described = fields.get(external)
        if described is None:
            problems.append(
                f"{where}: external_id_field {spec.external_id_field} does not exist "
                f"on sObject {spec.object}."
            )
        elif spec.mode in ("upsert", "mirror") and not (described.get("externalId") or external == "id"):
            problems.append(
                f"{where}: external_id_field {spec.external_id_field} on sObject {spec.object} is not an "
                "External ID field; upsert needs one (mark it External ID in Salesforce or pick another)."
            )
    if problems:
        raise SyncMappingError("\n".join(problems))


# ---------------------------------------------------------------------------- wire format


@dataclass
class Batch:
    operation: str
    records: list[dict[str, str]]
    pending: list[PendingRecord]


class _Plan:
    """Turns changes into Bulk records and the value each result row is matched on."""

    def __init__(self, spec: SyncSpec) -> None:
        self.spec = spec
        self.fields = list(spec.mapping.values())
        key_field = spec.key_field
        # Results echo the header as sent, so match on the mapping's own spelling of the field.
        self.match_field = (
            next((f for f in self.fields if f.lower() == key_field.lower()), key_field) if key_field else None
        )

    def record(self, change: Change, salesforce_id: str | None) -> dict[str, str]:
        if change.change_type == REMOVED:
            return {"Id": salesforce_id or ""}
        # Non-empty text is already its wire form: skipping the call for it halves the cost per record.
        wire = [v if type(v) is str and v else wire_value(v) for v in change.values]
        record = dict(zip(self.fields, wire, strict=True))
        if self.spec.mode == "update" and self.spec.column_for("Id") is None:
            # The lookup field only found the record; sending it would need it to be updateable.
            lookup = (self.spec.external_id_field or "").lower()
            record = {"Id": salesforce_id or "", **{k: v for k, v in record.items() if k.lower() != lookup}}
        return record

    def match_value(self, operation: str, row: Mapping[str, str]) -> str:
        if operation == "delete":
            return row.get("Id", "")
        if self.match_field is not None and operation != "insert":
            return row.get(self.match_field, "")
        return json.dumps([row.get(f, "") for f in self.fields])


# ---------------------------------------------------------------------------- results


def match_results(
    result: IngestResult, pending: Sequence[PendingRecord], plan: _Plan, operation: str
) -> tuple[list[Outcome], int]:
    """Pair result rows with the records sent (by External ID, Id, or the full row for inserts).

    Returns the outcomes and how many records were left unprocessed (they stay 'changed')."""
    waiting: dict[str, list[PendingRecord]] = {}
    for record in pending:
        waiting.setdefault(record.match_value, []).append(record)
    outcomes: list[Outcome] = []

    def take(row: Mapping[str, str]) -> PendingRecord | None:
        candidates = waiting.get(plan.match_value(operation, row))
        return candidates.pop(0) if candidates else None

    for row in result.successful:
        record = take(row)
        if record is not None:
            outcomes.append(_outcome(record, row.get("sf__Id") or record.salesforce_id, "succeeded"))
    for row in result.failed:
        record = take(row)
        if record is None:
            continue
        error = row.get("sf__Error", "") or "unknown error"
        if record.change_type == REMOVED and error.startswith(_ALREADY_DELETED):
            outcomes.append(_outcome(record, record.salesforce_id, "succeeded"))
        else:
            outcomes.append(_outcome(record, row.get("sf__Id") or record.salesforce_id, "failed", error))
    unmatched = len(result.successful) + len(result.failed) - len(outcomes)
    if unmatched:
        log.warning("%d Bulk result rows matched no record sent; they are treated as unprocessed", unmatched)
    return outcomes, len(pending) - len(outcomes)


def _outcome(
    record: PendingRecord, salesforce_id: str | None, status: str, error: str | None = None
) -> Outcome:
    return Outcome(
        record_key=record.record_key,
        row_hash=record.row_hash,
        change_type=record.change_type,
        salesforce_id=salesforce_id or None,
        status=status,
        error=error,
        sent_values=record.sent_values,
    )


# ---------------------------------------------------------------------------- the run


@dataclass
class SalesforceSyncRun:
    """Everything one run needs; `run()` returns a SyncReport or raises with state consistent."""

    spec: SyncSpec
    warehouse: Warehouse
    client: SalesforceClient
    sync_schema: str
    model_schema: str
    run_id: str
    full_resync: bool = False
    recovery_timeout: float = 300.0
    """How long to wait for a Bulk job left by an interrupted run before failing the sync."""
    model_table: str | None = None
    """The model's table where it is not the model's name (a versioned dbt model's `<name>_v<n>`)."""
    schema_prefix: str = ""
    """The environment's schema prefix, put before the schema of `salesforce_data`."""
    scope: Mapping[str, Any] = field(default_factory=dict)
    """Model column -> value: only these rows are detected and sent (a workflow run's slice, e.g. one
    campaign). Other rows' state is left alone; mirror syncs cannot run scoped."""

    def __post_init__(self) -> None:
        self.store = SyncStore(self.warehouse, self.sync_schema)
        self.plan = _Plan(self.spec)
        self.resolver: ConflictResolver | None = None
        if self.spec.detects_conflicts and self.spec.salesforce_data:
            schema, _, table = self.spec.salesforce_data.partition(".")
            self.resolver = ConflictResolver(
                self.spec, self.store, self.schema_prefix + schema, table, self.run_id
            )
        self.report = SyncReport(
            sync_name=self.spec.state_key,
            sobject=self.spec.object,
            mode=self.spec.mode,
            run_id=self.run_id,
            full_resync=self.full_resync,
        )

    def run(self) -> SyncReport:
        started, started_at = time.monotonic(), utcnow()
        calls_before = self.client.api_calls
        error: BaseException | None = None
        # One warehouse session for the whole run: every step commits on its own (a crash loses nothing),
        # and opening a session is not free (a DuckDB file replays its log; Snowflake logs in). Locally
        # the `warehouse` pool already keeps other writers out while a sync runs.
        with self.store.pinned():
            try:
                with cyclic_gc_paused():
                    self._run()
                return self.report
            except BaseException as exc:
                error = exc
                raise
            finally:
                self.report.api_calls = self.client.api_calls - calls_before
                self.report.duration_seconds = time.monotonic() - started
                self._audit(started_at, error)

    def _run(self) -> None:
        # The mapping is checked against Salesforce before any model row is read.
        validate_mapping(self.spec, self.client.describe(self.spec.object))
        self.report.salesforce_url = f"{self.client.instance_url}/lightning/o/{self.spec.object}/list"
        with self.store.session() as session:
            self.store.ensure_tables(session)
        open_jobs = self.store.open_jobs(self.spec.state_key)
        if open_jobs:  # a crashed run left Bulk jobs: apply them before detecting changes
            self.recover(open_jobs)
        changes = self.detect()
        self.send(changes.changes)
        # Every REST response carries the org's API usage; /limits only if none did.
        usage = self.client.api_usage or self.client.limits().get("DailyApiRequests", {})
        self.report.api_usage = dict(usage)
        if self.report.job_errors:
            raise SyncIncomplete(
                f"Sync {self.spec.name}: Bulk job(s) ended without processing all records "
                f"({'; '.join(f'{j}: {e}' for j, e in self.report.job_errors.items())}). Their "
                f"{sum(self.report.unprocessed.values())} record(s) stay pending and are sent next run.",
                self.report,
            )

    def _audit(self, started_at: datetime, error: BaseException | None) -> None:
        status = "succeeded" if error is None else "failed"
        message = None if error is None else f"{type(error).__name__}: {error}"
        try:
            if error is not None:  # it may have failed before the sync tables were first created
                with self.store.session() as session:
                    self.store.ensure_tables(session)
            self.store.record_run(self.report.audit_row(status, started_at, message))
        except Exception:  # the audit row must not hide the sync's own error
            log.exception("Could not write the sync_runs row for %s", self.spec.name)
            if error is None:
                raise

    # -------------------------------------------------------------- recovery

    def recover(self, open_jobs: Mapping[tuple[str, int], list[tuple[str, str]]]) -> None:
        """Apply the results of Bulk jobs an interrupted run created (their records were sent)."""
        for (run_id, batch_no), jobs in open_jobs.items():
            pending = self.store.pending_records(self.spec.state_key, run_id, batch_no)
            result = IngestResult(job_ids=[], successful=[], failed=[], unprocessed=[])
            for job_id, _ in jobs:
                result.extend(self._job_results(job_id, run_id))
            outcomes, _ = match_results(result, pending, self.plan, jobs[0][1])
            self.store.apply_outcomes(self.spec.state_key, run_id, batch_no, [j for j, _ in jobs], outcomes)
            confirmed = sum(1 for o in outcomes if o.status == "succeeded")
            self.report.recovered += confirmed
            log.info(
                "Sync %s: recovered %d Bulk job(s) of run %s batch %d: %d confirmed, %d failed",
                self.spec.name,
                len(jobs),
                run_id,
                batch_no,
                confirmed,
                len(outcomes) - confirmed,
            )

    def _job_results(self, job_id: str, run_id: str) -> IngestResult:
        if self.client.ingest_job(job_id).get("state") == "Open":
            # Created, but its upload never completed: the run that created it is gone (recovery runs only
            # in a later run of this sync), so it would stay Open and process nothing. Aborting it makes
            # that certain; its records stay pending and are sent again by this run.
            log.warning("Sync %s: aborting Bulk job %s left Open by run %s", self.spec.name, job_id, run_id)
            self.client.abort_ingest_job(job_id)
        saved = self.client.poll_timeout
        self.client.poll_timeout = min(saved, self.recovery_timeout)
        try:
            return self.client.job_results(job_id)
        except SalesforceError as exc:
            raise SalesforceError(
                f"Sync {self.spec.name}: Bulk job {job_id}, left pending by run {run_id}, has no results "
                f"yet ({exc}). Salesforce is still processing it: re-run later (or raise "
                "recovery_timeout_seconds); its records are applied then, never sent twice."
            ) from exc
        finally:
            self.client.poll_timeout = saved

    # -------------------------------------------------------------- detection and sending

    def detect(self) -> ChangeSet:
        """Forget batches never handed to Salesforce, then find what changed since the confirmed state."""
        self.store.clear_pending(self.spec.state_key)
        with self.store.session() as session:
            model = resolve_model(session, self.spec, self.model_schema, self.model_table, self.scope)
            changes = detect_changes(
                session, self.spec, model, self.store.table("sync_state"), self.full_resync
            )
            if self.resolver is not None:
                self._resolve_conflicts(session, model, changes)
        self.report.detection_seconds = changes.seconds
        self.report.skipped_null_keys = changes.null_keys
        self.report.skipped_duplicate_keys = changes.duplicate_keys[:20]
        for change in changes.changes:
            self.report.planned[change.change_type] += 1
        if changes.null_keys or changes.duplicate_keys:
            log.warning(
                "Sync %s: skipped %d row(s) with a NULL %s and %d duplicate key(s) (e.g. %s); fix the model",
                self.spec.name,
                changes.null_keys,
                self.spec.primary_key,
                len(changes.duplicate_keys),
                ", ".join(changes.duplicate_keys[:5]),
            )
        log.info(
            "Sync %s: %d added, %d changed, %d removed (detected in %.3fs)",
            self.spec.name,
            self.report.planned[ADDED],
            self.report.planned[CHANGED],
            self.report.planned[REMOVED],
            changes.seconds,
        )
        return changes

    def _resolve_conflicts(self, session: WarehouseSession, model: ModelRelation, changes: ChangeSet) -> None:
        """Decide the conflicts and record them before anything is sent: the losing value stays there."""
        assert self.resolver is not None
        changed = [(c.record_key, c.salesforce_id) for c in changes.changes if c.change_type == CHANGED]
        if not changed:
            return
        with self.store.scratch_keys(self.spec.state_key, self.run_id, changed) as keys:
            decided = self.resolver.resolve(session, model, changes.changes, keys)
            # A field that still disagrees the same way (e.g. Salesforce kept its value and the model
            # sends its own again with another change) was recorded when first decided: record what is new.
            known = self.store.recorded_conflicts(self.spec.state_key, keys)
        conflicts = [
            c
            for c in decided
            if known.get((c.record_key, c.field)) != (c.warehouse_value, c.salesforce_value, c.decision)
        ]
        self.store.record_conflicts(self.spec.state_key, self.run_id, conflicts)
        self.report.conflicts.update(c.decision for c in conflicts)
        self.report.conflict_sample = [
            {"record_key": c.record_key, "field": c.field, "policy": c.policy, "decision": c.decision}
            for c in conflicts[:10]
        ]
        if conflicts:
            log.info(
                "Sync %s: %d conflict(s) (%s), recorded in %s",
                self.spec.name,
                len(conflicts),
                ", ".join(f"{n} {d}" for d, n in sorted(self.report.conflicts.items())),
                self.store.table("sync_conflicts"),
            )

    def send(self, changes: Sequence[Change]) -> None:
        upserts = [c for c in changes if c.change_type != REMOVED]
        removals = [c for c in changes if c.change_type == REMOVED]
        ids, unresolved = self._record_ids(upserts)
        upserts = [c for c in upserts if c.record_key not in unresolved]
        # One ingest call per operation: the client creates and uploads every job (batch_size records
        # each) before waiting, so Salesforce processes them in parallel; recovery treats the group as
        # one batch (all its jobs are recorded under the same batch number).
        groups = [(self.spec.operation, upserts), ("delete", removals)]
        batches = [self._batch(n, op, group, ids) for n, (op, group) in enumerate(groups) if group]
        if unresolved:
            self._fail_unresolved([c for c in changes if c.record_key in unresolved], unresolved)
        self.store.write_pending(self.spec.state_key, [p for b in batches for p in b.pending])
        for batch in batches:
            self._send_batch(batch.pending[0].batch_no, batch)

    def _batch(
        self, batch_no: int, operation: str, changes: Sequence[Change], ids: Mapping[str, str]
    ) -> Batch:
        records, pending = [], []
        # Whole seconds: Salesforce's SystemModstamp of this write must not look older than the send.
        sent_at = utcnow().replace(microsecond=0)
        for change in changes:
            salesforce_id = ids.get(change.record_key) or change.salesforce_id
            record = self.plan.record(change, salesforce_id)
            records.append(record)
            sent = None
            if self.resolver is not None and change.change_type != REMOVED:
                sent = self.resolver.sent_values(change, record, sent_at)
            pending.append(
                PendingRecord(
                    run_id=self.run_id,
                    batch_no=batch_no,
                    record_key=change.record_key,
                    row_hash=change.row_hash,
                    change_type=change.change_type,
                    salesforce_id=salesforce_id,
                    match_value=self.plan.match_value(operation, record),
                    sent_values=sent,
                )
            )
        return Batch(operation=operation, records=records, pending=pending)

    def _send_batch(self, batch_no: int, batch: Batch) -> None:
        for record in batch.pending:
            self.report.sent[record.change_type] += 1

        def on_job_created(job_id: str) -> None:
            self.store.record_job(self.spec.state_key, self.run_id, batch_no, job_id, batch.operation)
            self.report.job_ids.append(job_id)

        result = self.client.ingest(
            self.spec.object,
            batch.operation,
            batch.records,
            external_id_field=self.spec.external_id_field if batch.operation == "upsert" else None,
            max_records_per_job=self.spec.batch_size,
            on_job_created=on_job_created,
        )
        outcomes, unprocessed = match_results(result, batch.pending, self.plan, batch.operation)
        self.store.apply_outcomes(self.spec.state_key, self.run_id, batch_no, result.job_ids, outcomes)
        self._count(outcomes)
        self.report.job_errors.update(result.job_errors)
        if unprocessed:
            self.report.unprocessed[batch.pending[0].change_type] += unprocessed

    def _count(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            counter = self.report.succeeded if outcome.status == "succeeded" else self.report.failed
            counter[outcome.change_type] += 1
            if outcome.status == "failed" and len(self.report.failure_sample) < 10:
                self.report.failure_sample.append(
                    {
                        "record_key": outcome.record_key,
                        "change_type": outcome.change_type,
                        "error": outcome.error or "",
                    }
                )

    # -------------------------------------------------------------- update mode: find record Ids

    def _record_ids(self, changes: Sequence[Change]) -> tuple[dict[str, str], dict[str, str]]:
        """Update mode without an Id column: Ids from state, else looked up by the unique field.

        Returns (record_key -> Id, record_key -> why it could not be resolved)."""
        spec = self.spec
        if spec.mode != "update" or spec.column_for("Id") is not None:
            return {}, {}
        ids = {c.record_key: c.salesforce_id for c in changes if c.salesforce_id}
        field_name = spec.external_id_field or ""
        position = list(spec.mapping).index(spec.column_for(field_name) or "")
        wanted = {c.record_key: wire_value(c.values[position]) for c in changes if not c.salesforce_id}
        found: dict[str, list[str]] = {}
        values = sorted(set(wanted.values()) - {NULL})
        for start in range(0, len(values), _LOOKUP_CHUNK):
            chunk = values[start : start + _LOOKUP_CHUNK]
            quoted = ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in chunk)
            soql = f"SELECT Id, {field_name} FROM {spec.object} WHERE {field_name} IN ({quoted})"
            for row in self.client.query(soql):
                found.setdefault(row[field_name], []).append(row["Id"])
        missing: dict[str, str] = {}
        for record_key, value in wanted.items():
            matches = found.get(value, [])
            if len(matches) == 1:
                ids[record_key] = matches[0]
            else:
                problem = "no" if not matches else f"{len(matches)}"
                missing[record_key] = (
                    f"NOT_FOUND:{problem} {spec.object} record(s) with {field_name} = {value}; "
                    "update mode only changes existing records"
                )
        return ids, missing

    def _fail_unresolved(self, changes: Sequence[Change], reasons: Mapping[str, str]) -> None:
        """Records update mode cannot address go to sync_failures (retried next run) and are not sent."""
        outcomes = [
            Outcome(c.record_key, c.row_hash, c.change_type, None, "failed", reasons[c.record_key])
            for c in changes
        ]
        self.store.apply_outcomes(self.spec.state_key, self.run_id, -1, [], outcomes)
        self._count(outcomes)
