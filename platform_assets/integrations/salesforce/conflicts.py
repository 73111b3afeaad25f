"""Conflict policies: who wins a field both the warehouse and someone in Salesforce changed.

For every changed record of a sync with conflict policies, each field a policy covers is compared three
ways, as text in Salesforce's wire form (normalised so "1.50" = "1.5" and "…Z" = "…+0000"):

- W, the model's value now;
- L, the value the platform last wrote (sync_state.sent_values, with the time it was sent);
- S, Salesforce's value in the extracted records (`salesforce_data`), with the record's SystemModstamp.

Salesforce changed the field since the platform wrote it when S differs from L and the extracted record is
not older than that write (an older extract cannot show a later edit). That is a conflict when S also
differs from W; the field's policy decides it, and the conflict (both values, both times, the decision) is
written to sync_conflicts before anything is sent, so the losing value is never lost silently.
A record without a baseline (sent before the policy was declared) gets one when it is next written.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from platform_assets.integrations.salesforce.changes import KEEP, NULL, Change, ModelRelation, wire_value
from platform_assets.integrations.salesforce.sync_spec import ConflictRule, SyncSpec
from platform_assets.integrations.salesforce.sync_state import CHANGED, Conflict, SyncStore
from platform_assets.warehouse import WarehouseSession, quote_identifier

WAREHOUSE, SALESFORCE, MERGED = "warehouse", "salesforce", "merged"
PENDING = "pending"  # a custom rule's conflict while its expression is evaluated
_MODSTAMPS = ("systemmodstamp", "lastmodifieddate")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class ConflictDataError(RuntimeError):
    """The extracted Salesforce records a sync's conflict policies need are missing or incomplete."""


def canonical(text: str | None) -> tuple[str, Any] | None:
    """A value in a form where Salesforce's spelling and the platform's compare equal."""
    if text is None:
        return None
    value = text.strip()
    if value in ("", NULL):
        return None
    if value.lower() in ("true", "false"):
        return ("bool", value.lower() == "true")
    if _NUMBER.match(value):
        try:
            return ("number", Decimal(value).normalize())
        except InvalidOperation:
            pass
    if len(value) >= 10 and value[4] == "-" and value[7] == "-":
        try:
            return ("time", as_utc(datetime.fromisoformat(value.replace("+0000", "+00:00"))))
        except ValueError:
            pass
    return ("text", value)


def as_utc(value: datetime | date | str | None) -> datetime | None:
    """Naive UTC (how both warehouses store TIMESTAMP), from a datetime, date or ISO-8601 text."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("+0000", "+00:00"))
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


@dataclass(frozen=True)
class SalesforceRecord:
    values: dict[str, str | None]
    """lower-cased field -> text as extracted"""
    changed_at: datetime | None


@dataclass(frozen=True)
class Baseline:
    sent_at: datetime
    values: dict[str, str | None]

    @classmethod
    def parse(cls, text: str) -> Baseline:
        document = json.loads(text)
        return cls(sent_at=datetime.fromisoformat(document["at"]), values=document["values"])


def decide(rule: ConflictRule, w: Any, last: Any, w_at: datetime | None, s_at: datetime | None) -> str:
    """The winner under a built-in policy (custom rules are evaluated in the warehouse)."""
    if rule.policy == "warehouse_wins":
        return WAREHOUSE
    if rule.policy == "salesforce_wins":
        return SALESFORCE
    # last_writer_wins. A field the warehouse did not change since it was written was last written in
    # Salesforce; otherwise the row's change time against the record's, a tie leaving Salesforce's.
    if w == last or w_at is None or s_at is None:
        return SALESFORCE
    return WAREHOUSE if w_at > s_at else SALESFORCE


class ConflictResolver:
    """Finds and decides the conflicts of one run, and what each record's new baseline is."""

    def __init__(self, spec: SyncSpec, store: SyncStore, schema: str, table: str, run_id: str) -> None:
        self.spec = spec
        self.store = store
        self.schema = schema
        self.table = table
        self.run_id = run_id
        self.rules = spec.conflict_rules()
        self.fields = list(spec.mapping.values())
        self.baselines: dict[str, Baseline] = {}

    def resolve(
        self, session: WarehouseSession, model: ModelRelation, changes: Sequence[Change], keys: str
    ) -> list[Conflict]:
        """Decide every conflict, turning a change's values into what is written: KEEP where Salesforce's
        value stays, a custom rule's value where it merges. `keys` is a subquery of the changed records'
        (record_key, salesforce_id)."""
        sent = self.store.sent_values(self.spec.state_key, keys)
        self.baselines = {key: Baseline.parse(text) for key, text in sent.items()}
        candidates = [
            c
            for c in changes
            if c.change_type == CHANGED and c.record_key in self.baselines and c.salesforce_id
        ]
        if not candidates:
            return []
        records = self._salesforce_records(session, keys)
        times = self._changed_at(session, model, keys)
        conflicts = [
            conflict
            for change in candidates
            for conflict in self._conflicts(change, records.get(change.salesforce_id or ""), times)
        ]
        conflicts = self._evaluate_custom(session, conflicts)
        self._apply(changes, conflicts)
        return conflicts

    def _conflicts(
        self, change: Change, record: SalesforceRecord | None, times: Mapping[str, datetime | None]
    ) -> list[Conflict]:
        baseline = self.baselines[change.record_key]
        if record is None or record.changed_at is None or record.changed_at < baseline.sent_at:
            return []  # not extracted since the platform wrote it: no edit can show
        found = []
        w_at = times.get(change.record_key)
        for position, field in enumerate(self.fields):
            rule = self.rules.get(field)
            if rule is None:
                continue
            w, s, last = (
                wire_value(change.values[position]),
                record.values.get(field.lower()),
                baseline.values.get(field),
            )
            cw, cs, cl = canonical(w), canonical(s), canonical(last)
            if cs in (cl, cw):
                continue
            decision = "" if rule.policy == "custom" else decide(rule, cw, cl, w_at, record.changed_at)
            found.append(
                Conflict(
                    record_key=change.record_key,
                    salesforce_id=change.salesforce_id or "",
                    field=field,
                    policy=rule.policy,
                    warehouse_value=None if cw is None else w,
                    salesforce_value=None if cs is None else s,
                    last_sent_value=None if cl is None else last,
                    warehouse_changed_at=w_at,
                    salesforce_changed_at=record.changed_at,
                    decision=decision,
                    sent_value=(None if cw is None else w) if decision == WAREHOUSE else None,
                )
            )
        return found

    def _evaluate_custom(self, session: WarehouseSession, conflicts: list[Conflict]) -> list[Conflict]:
        """Each custom rule's expression, run over its conflicts as rows of the conflicts table (whose
        columns it reads): written as `pending`, evaluated in one query per rule, then removed (the
        decided rows are recorded by the run)."""
        pending = [c for c in conflicts if not c.decision]
        if not pending:
            return conflicts
        table, name, run = self.store.table("sync_conflicts"), self.spec.state_key, self.run_id
        self.store.record_conflicts(name, run, [dataclasses.replace(c, decision=PENDING) for c in pending])
        results: dict[tuple[str, str], str | None] = {}
        try:
            for field in sorted({c.field for c in pending}):
                expression = self.rules[field].expression
                try:
                    rows = session.fetchall(
                        f"SELECT record_key, CAST(({expression}) AS VARCHAR) FROM {table} "
                        "WHERE sync_name = ? AND run_id = ? AND decision = ? AND field = ?",
                        [name, run, PENDING, field],
                    )
                except Exception as exc:  # the warehouse's own error type differs per dialect
                    raise ConflictDataError(
                        f"sync {name} ({self.spec.source_file}), custom conflict policy of {field}: the "
                        f"expression failed in the warehouse: {exc}. Fix its `expression`."
                    ) from exc
                results.update(((key, field), value) for key, value in rows)
        finally:
            session.execute(
                f"DELETE FROM {table} WHERE sync_name = ? AND run_id = ? AND decision = ?",
                [name, run, PENDING],
            )
        decided = [c for c in conflicts if c.decision]
        return decided + [_custom_decision(c, results[c.record_key, c.field]) for c in pending]

    def _apply(self, changes: Sequence[Change], conflicts: Sequence[Conflict]) -> None:
        positions = {field: i for i, field in enumerate(self.fields)}
        by_key = {c.record_key: c for c in changes}
        for conflict in conflicts:
            if conflict.decision == WAREHOUSE:
                continue
            change = by_key[conflict.record_key]
            values = list(change.values)
            values[positions[conflict.field]] = (
                KEEP if conflict.decision == SALESFORCE else conflict.sent_value
            )
            change.values = tuple(values)

    def _salesforce_records(self, session: WarehouseSession, keys: str) -> dict[str, SalesforceRecord]:
        """The latest extracted version of each record (extracts are incremental: a record may repeat)."""
        columns = {
            name.lower(): name
            for (name,) in session.fetchall(
                "SELECT column_name FROM information_schema.columns "
                "WHERE lower(table_schema) = lower(?) AND lower(table_name) = lower(?)",
                [self.schema, self.table],
            )
        }
        where = f"sync {self.spec.name} ({self.spec.source_file}), key 'salesforce_data'"
        if not columns:
            raise ConflictDataError(
                f"{where}: the extracted records {self.schema}.{self.table} do not exist. Extract "
                f"{self.spec.object} first, or fix salesforce_data."
            )
        stamps = [columns[s] for s in _MODSTAMPS if s in columns]
        missing = [f for f in ["Id", *self.rules] if f.lower() not in columns]
        if missing or not stamps:
            raise ConflictDataError(
                f"{where}: {self.schema}.{self.table} has no column(s) "
                f"{', '.join(missing or ['SystemModstamp/LastModifiedDate'])}: extract these fields of "
                f"{self.spec.object} (conflicts are detected on them)."
            )
        wanted = [columns["id"], stamps[0], *(columns[f.lower()] for f in self.rules)]
        deleted = f", {quote_identifier(columns['isdeleted'])}" if "isdeleted" in columns else ""
        relation = f"{quote_identifier(self.schema)}.{quote_identifier(self.table)}"
        latest: dict[str, tuple] = {}
        for row in session.fetchall(
            f"SELECT {', '.join(quote_identifier(c) for c in wanted)}{deleted} FROM {relation} "
            f"WHERE {quote_identifier(columns['id'])} IN (SELECT salesforce_id FROM {keys} k)"
        ):
            stamp = as_utc(row[1]) or datetime.min
            if row[0] not in latest or stamp >= latest[row[0]][0]:
                latest[row[0]] = (stamp, row)
        records: dict[str, SalesforceRecord] = {}
        for record_id, (stamp, row) in latest.items():
            if deleted and str(row[-1]).strip().lower() == "true":
                continue  # deleted in Salesforce: nothing there to conflict with
            values = row[2 : 2 + len(self.rules)]
            records[record_id] = SalesforceRecord(
                values={
                    f.lower(): None if v is None else str(v) for f, v in zip(self.rules, values, strict=True)
                },
                changed_at=None if stamp == datetime.min else stamp,
            )
        return records

    def _changed_at(
        self, session: WarehouseSession, model: ModelRelation, keys: str
    ) -> dict[str, datetime | None]:
        column = self.spec.changed_at_column
        if not column:
            return {}
        key = f"CAST({model.column(self.spec.primary_key)} AS VARCHAR)"
        rows = session.fetchall(
            f"SELECT {key}, {model.column(column)} FROM {model.sql} "
            f"WHERE {key} IN (SELECT record_key FROM {keys} k)"
        )
        return {k: as_utc(v) for k, v in rows}

    def sent_values(self, change: Change, record: Mapping[str, str], sent_at: datetime) -> str:
        """The record's new baseline: the fields sent now, and the earlier value of the fields kept."""
        earlier = self.baselines.get(change.record_key)
        merged = dict(earlier.values) if earlier is not None else {}
        for field, value in zip(self.fields, change.values, strict=True):
            if value is not KEEP:
                merged[field] = record[field] if field in record else wire_value(value)
        return json.dumps({"at": sent_at.isoformat(), "values": merged}, separators=(",", ":"))


def _custom_decision(conflict: Conflict, result: str | None) -> Conflict:
    outcome = canonical(result)
    if outcome == canonical(conflict.salesforce_value):
        decision, sent = SALESFORCE, None
    elif outcome == canonical(conflict.warehouse_value):
        decision, sent = WAREHOUSE, conflict.warehouse_value
    else:
        decision, sent = MERGED, result
    return dataclasses.replace(conflict, decision=decision, sent_value=sent)
