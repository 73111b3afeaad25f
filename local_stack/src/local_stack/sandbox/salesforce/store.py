"""The sandbox org's records in SQLite, and Salesforce's per-record DML semantics over them.

One table per sObject (typed columns), unique External IDs enforced among live records, soft delete
(IsDeleted) as in Salesforce's recycle bin. Every batch of changes runs in one transaction with executemany,
so a 10k-record Bulk job costs a handful of statements, not 10k round trips.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from local_stack.sandbox.salesforce import schema
from local_stack.sandbox.salesforce.change_events import NOT_IN_EVENTS, EventLog, PendingEvent, event_schema
from local_stack.sandbox.salesforce.schema import (
    NUMBER_TYPES,
    OBJECTS,
    SQL_TYPES,
    TEXT_TYPES,
    FieldSpec,
    ObjectSpec,
    make_id,
    normalize_id,
    object_of_id,
)
from local_stack.sandbox.salesforce.soql import CompiledQuery, normalize_datetime

_CHUNK = 500  # ids per IN (…) lookup
AUDIT_FIELDS = ("CreatedDate", "LastModifiedDate", "SystemModstamp")
# Every open org of this process: a field added at run time is added to the catalog they share, so each
# gets the column.
_LIVE_ORGS: weakref.WeakSet[Org] = weakref.WeakSet()
_CATALOG_LOCK = threading.Lock()


class RecordError(Exception):
    """One record's failure, formatted like Bulk API's sf__Error: CODE:message:fields --"""

    def __init__(self, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(f"{code}:{message}:{','.join(fields)} --")
        self.code = code
        self.message = message
        self.fields = list(fields)


@dataclass
class Outcome:
    record_id: str = ""
    created: bool = False
    error: RecordError | None = None


@dataclass
class _Pending:
    """A record on its way in: target id (None = create), merged values, the fields this change sets."""

    index: int
    record_id: str | None
    values: dict[str, Any]
    changed: set[str]
    previous: dict[str, Any] | None = None
    """The record before this change (updates), to tell which fields really changed."""


def format_number(value: float | int) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


# Salesforce refuses an Email value without one @ between a local part and a dotted domain.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def coerce(spec: FieldSpec, raw: Any) -> Any:
    """A sent value (CSV text or JSON) -> the stored value, or RecordError naming the field."""
    if raw is None:
        return None
    if spec.type in TEXT_TYPES:  # most cells: checked for length only
        text = raw if type(raw) is str else str(raw)
        if len(text) > spec.length:
            raise _too_long(spec, text)
        if spec.type == "email" and text and not _EMAIL.fullmatch(text):
            raise RecordError(
                "INVALID_EMAIL_ADDRESS", f"{spec.name}: invalid email address: {text}", [spec.name]
            )
        return text
    try:
        if spec.type == "boolean":
            if isinstance(raw, bool):
                return int(raw)
            text = str(raw).strip().lower()
            if text in ("true", "1", "yes"):
                return 1
            if text in ("false", "0", "no"):
                return 0
            raise ValueError(raw)
        if spec.type == "int":
            number = float(raw)
            if not number.is_integer():
                raise ValueError(raw)
            return int(number)
        if spec.type in NUMBER_TYPES:
            return float(raw)
        if spec.type == "datetime":
            return normalize_datetime(str(raw))
        if spec.type == "date":
            return date.fromisoformat(str(raw).strip()[:10]).isoformat()
    except (ValueError, TypeError):
        raise RecordError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{spec.name}: value not of required type: {raw}", [spec.name]
        ) from None
    text = str(raw)
    if spec.type == "reference":
        normalized = normalize_id(text.strip())
        if normalized is None:
            raise RecordError("MALFORMED_ID", f"{spec.name}: id value of incorrect type: {text}", [spec.name])
        return normalized
    if len(text) > spec.length:
        raise _too_long(spec, text)
    return text


def _too_long(spec: FieldSpec, text: str) -> RecordError:
    return RecordError(
        "STRING_TOO_LONG",
        f"{spec.name}: data value too large: {text[:40]}… (max length={spec.length})",
        [spec.name],
    )


class Org:
    """All sObject records plus the sandbox's job bookkeeping, in one SQLite file. Thread-safe via a lock."""

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(str(self.db_path), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._restore_added_fields()
        self._create_schema()
        self.events = EventLog(self.conn)
        self._last_stamp = self._max_stamp()
        _LIVE_ORGS.add(self)

    # ------------------------------------------------------------ schema and bookkeeping

    def _create_schema(self) -> None:
        with self.lock:
            for spec in OBJECTS.values():
                columns = ", ".join(
                    f'"{f.name}" {SQL_TYPES[f.type]}' + (" PRIMARY KEY" if f.name == "Id" else "")
                    for f in spec.fields
                )
                self.conn.execute(f'CREATE TABLE IF NOT EXISTS "{spec.table}" ({columns})')
                self._add_missing_columns(spec)
                self.conn.execute(
                    f'CREATE INDEX IF NOT EXISTS "ix_{spec.name}_modstamp" '
                    f'ON "{spec.table}" ("SystemModstamp")'
                )
                for f in spec.fields:
                    if f.unique:
                        self.conn.execute(
                            f'CREATE UNIQUE INDEX IF NOT EXISTS "ux_{spec.name}_{f.name}" ON "{spec.table}" '
                            f'("{f.name}") WHERE "IsDeleted" = 0 AND "{f.name}" IS NOT NULL'
                        )
                    elif f.external_id:
                        self.conn.execute(
                            f'CREATE INDEX IF NOT EXISTS "ix_{spec.name}_{f.name}" '
                            f'ON "{spec.table}" ("{f.name}")'
                        )
            self.conn.execute("CREATE TABLE IF NOT EXISTS _sequences (prefix TEXT PRIMARY KEY, next INTEGER)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT)")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS _ingest_jobs (id TEXT PRIMARY KEY, info TEXT NOT NULL)"
            )
            # A job's upload and result CSVs live apart from its info, so a state change (every poll-visible
            # step) rewrites a few hundred bytes, not megabytes of CSV.
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS _ingest_job_data (id TEXT NOT NULL, kind TEXT NOT NULL, content, "
                "PRIMARY KEY (id, kind))"
            )
            self._move_job_data_out_of_jobs()

    def _add_missing_columns(self, spec: ObjectSpec) -> None:
        """Columns for fields the table lacks (added at run time or by a newer catalog): null in each row."""
        present = {row[1] for row in self.conn.execute(f'PRAGMA table_info("{spec.table}")')}
        for f in spec.fields:
            if f.name not in present:
                self.conn.execute(f'ALTER TABLE "{spec.table}" ADD COLUMN "{f.name}" {SQL_TYPES[f.type]}')

    def _restore_added_fields(self) -> None:
        """Fields added to this org at run time (add_field) are part of its catalog again after a restart."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS _added_fields (object TEXT NOT NULL, name TEXT NOT NULL, spec TEXT, "
            "PRIMARY KEY (object, name))"
        )
        rows = self.conn.execute("SELECT object, spec FROM _added_fields ORDER BY rowid").fetchall()
        with _CATALOG_LOCK:
            for object_name, text in rows:
                attributes = json.loads(text)
                attributes["reference_to"] = tuple(attributes.get("reference_to") or ())
                schema.add_field(object_name, FieldSpec(**attributes))
            event_schema.cache_clear()
        for org in list(_LIVE_ORGS) if rows else []:  # other orgs open in this process get the columns too
            with org.lock:
                for spec in OBJECTS.values():
                    org._add_missing_columns(spec)

    def add_field(self, object_name: str, new: FieldSpec) -> ObjectSpec:
        """Add a field to an object, as an admin does in Setup: describe, SOQL, Bulk and REST serve it from
        now on; existing records hold null. Kept in this org's file across restarts. ValueError when the
        object is unknown, the type is not one the sandbox serves, or the name is taken by another field."""
        with _CATALOG_LOCK:
            spec = schema.add_field(object_name, new)
            event_schema.cache_clear()
        for org in list(_LIVE_ORGS):  # one org lock at a time: two orgs adding fields cannot deadlock
            with org.lock:
                org._add_missing_columns(spec)
        with self.lock:
            self.conn.execute(
                "INSERT OR REPLACE INTO _added_fields (object, name, spec) VALUES (?, ?, ?)",
                (spec.name, new.name, json.dumps(asdict(new))),
            )
        return spec

    def _move_job_data_out_of_jobs(self) -> None:
        """Org files written before _ingest_job_data kept the CSVs as columns of _ingest_jobs."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(_ingest_jobs)")}
        for kind in sorted(columns & {"upload", "successful", "failed", "unprocessed"}):
            self.conn.execute(
                f"INSERT OR IGNORE INTO _ingest_job_data (id, kind, content) "
                f"SELECT id, '{kind}', {kind} FROM _ingest_jobs WHERE {kind} IS NOT NULL"
            )
            self.conn.execute(f"ALTER TABLE _ingest_jobs DROP COLUMN {kind}")

    def _max_stamp(self) -> str:
        stamps = [
            self.conn.execute(f'SELECT max("SystemModstamp") FROM "{spec.table}"').fetchone()[0]
            for spec in OBJECTS.values()
        ]
        return max([s for s in stamps if s] or ["1970-01-01T00:00:00.000Z"])

    def next_stamp(self) -> str:
        """Now, but strictly after every earlier change, so `SystemModstamp > bookmark` never misses one."""
        now = datetime.now(UTC)
        last = datetime.fromisoformat(self._last_stamp.replace("Z", "+00:00"))
        if now <= last:
            now = last + timedelta(milliseconds=1)
        self._last_stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        return self._last_stamp

    def allocate_ids(self, prefix: str, count: int) -> list[str]:
        row = self.conn.execute("SELECT next FROM _sequences WHERE prefix = ?", (prefix,)).fetchone()
        start = row[0] if row else 1
        self.conn.execute(
            "INSERT INTO _sequences (prefix, next) VALUES (?, ?) ON CONFLICT(prefix) DO UPDATE SET next = ?",
            (prefix, start + count, start + count),
        )
        return [make_id(prefix, n) for n in range(start, start + count)]

    def meta_get(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM _meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def meta_set(self, key: str, value: str) -> None:
        with self.lock:
            self.conn.execute(
                "INSERT INTO _meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                (key, value, value),
            )

    def close(self) -> None:
        _LIVE_ORGS.discard(self)
        with self.lock:
            self.conn.close()

    # ------------------------------------------------------------ reads

    def count(self, sobject: str, include_deleted: bool = False) -> int:
        table = OBJECTS[sobject].table
        where = "" if include_deleted else ' WHERE "IsDeleted" = 0'
        with self.lock:
            return self.conn.execute(f'SELECT count(*) FROM "{table}"{where}').fetchone()[0]

    def get(self, spec: ObjectSpec, record_id: str) -> dict[str, Any] | None:
        with self.lock:
            rows = self._fetch(spec, "Id", [record_id])
        return rows.get(record_id)

    def _add_missing_columns(self, spec: ObjectSpec) -> None:
        """An org file written before a field was added to the schema gets the column (empty)."""
        have = {row[1] for row in self.conn.execute(f'PRAGMA table_info("{spec.table}")')}
        for f in spec.fields:
            if f.name not in have:
                self.conn.execute(f'ALTER TABLE "{spec.table}" ADD COLUMN "{f.name}" {SQL_TYPES[f.type]}')

    def _fetch(self, spec: ObjectSpec, column: str, values: Iterable[Any]) -> dict[Any, dict[str, Any]]:
        """Rows whose `column` is in `values`, keyed by that column (last one wins)."""
        names = [f.name for f in spec.fields]
        found: dict[Any, dict[str, Any]] = {}
        values = list(dict.fromkeys(values))
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            sql = (
                f'SELECT {", ".join(chr(34) + n + chr(34) for n in names)} FROM "{spec.table}" '
                f'WHERE "{column}" IN ({", ".join("?" * len(chunk))})'
            )
            for row in self.conn.execute(sql, chunk):
                record = dict(zip(names, row, strict=True))
                found[record[column]] = record
        return found

    def find_live_by(self, spec: ObjectSpec, column: str, values: Iterable[Any]) -> dict[Any, list[str]]:
        """Live record ids by `column` value (several when a non-unique External ID repeats)."""
        matches: dict[Any, list[str]] = {}
        values = list(dict.fromkeys(v for v in values if v is not None))
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            sql = (
                f'SELECT "{column}", "Id" FROM "{spec.table}" WHERE "IsDeleted" = 0 '
                f'AND "{column}" IN ({", ".join("?" * len(chunk))})'
            )
            for value, record_id in self.conn.execute(sql, chunk):
                matches.setdefault(value, []).append(record_id)
        return matches

    def run_query(self, compiled: CompiledQuery, include_deleted: bool) -> Iterator[tuple]:
        sql, params = compiled.sql(include_deleted)
        with self.lock:
            rows = self.conn.execute(sql, params).fetchall()
        yield from rows

    # ------------------------------------------------------------ writes

    def apply(
        self,
        spec: ObjectSpec,
        operation: str,
        rows: Sequence[dict[str, Any]],
        *,
        external_id_field: str | None = None,
        allow_system_fields: bool = False,
        inject_failure: Any = None,
        write: bool = True,
        publish: bool = True,
    ) -> list[Outcome]:
        """Apply one DML operation to `rows` (canonical field name -> sent value; None = set null).

        Each record succeeds or fails on its own, like Salesforce with allOrNone=false. `inject_failure(i)`
        returns a RecordError to fail record i on purpose (fault injection), or None. With write=False the
        records are only checked (an allOrNone request's first pass). With publish=False (seeding) the
        writes append no change events.
        """
        outcomes = [Outcome() for _ in rows]
        with self.lock:
            if operation in ("delete", "hardDelete"):
                self._delete(spec, rows, outcomes, hard=operation == "hardDelete", publish=publish)
                return outcomes
            pending = self._resolve_targets(
                spec, operation, rows, outcomes, external_id_field, allow_system_fields
            )
            self._validate(spec, pending, outcomes)
            if inject_failure is not None:
                for item in pending:
                    if outcomes[item.index].error is None:
                        outcomes[item.index].error = inject_failure(item.index)
            if not write:
                return outcomes
            self._write(
                spec,
                [p for p in pending if outcomes[p.index].error is None],
                outcomes,
                keep_audit=allow_system_fields,
                publish=publish,
            )
        return outcomes

    def _resolve_targets(
        self,
        spec: ObjectSpec,
        operation: str,
        rows: Sequence[dict[str, Any]],
        outcomes: list[Outcome],
        external_id_field: str | None,
        allow_system_fields: bool,
    ) -> list[_Pending]:
        """Coerce values and decide, per record, whether it updates an existing record or creates one."""
        coerced: list[tuple[int, dict[str, Any]]] = []
        for index, row in enumerate(rows):
            try:
                coerced.append(
                    (index, self._coerce_row(spec, operation, row, external_id_field, allow_system_fields))
                )
            except RecordError as error:
                outcomes[index].error = error
        targets: dict[int, str | None] = {}
        if operation == "insert":
            targets = {index: None for index, _ in coerced}
        elif operation == "update" or (operation == "upsert" and (external_id_field or "").lower() == "id"):
            targets = self._targets_by_id(spec, coerced, outcomes, create_missing=operation == "upsert")
        else:  # upsert by External ID
            key = spec.field(external_id_field or "")
            assert key is not None
            matches = self.find_live_by(spec, key.name, (values.get(key.name) for _, values in coerced))
            counts: dict[Any, int] = {}
            for _, values in coerced:
                counts[values.get(key.name)] = counts.get(values.get(key.name), 0) + 1
            for index, values in coerced:
                value = values.get(key.name)
                if value is None:
                    outcomes[index].error = RecordError(
                        "MISSING_ARGUMENT", f"{key.name} not specified", [key.name]
                    )
                elif counts[value] > 1:
                    outcomes[index].error = RecordError(
                        "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [key.name]
                    )
                elif len(matches.get(value, [])) > 1:
                    outcomes[index].error = RecordError(
                        "DUPLICATE_EXTERNAL_ID",
                        f"{key.name}: more than one record found for external id field: {matches[value]}",
                        [key.name],
                    )
                else:
                    targets[index] = matches[value][0] if value in matches else None
        existing = self._fetch(spec, "Id", [t for t in targets.values() if t])
        pending = []
        for index, values in coerced:
            if index not in targets or outcomes[index].error is not None:
                continue
            target = targets[index]
            if target is None:
                merged = {f.name: None for f in spec.fields}
                for f in spec.fields:
                    if f.default is not None and values.get(f.name) is None:
                        merged[f.name] = coerce(f, f.default)
                changed = set(values)
            else:
                merged = dict(existing[target])
                not_updateable = [
                    n
                    for n in values
                    if n != "Id" and not spec.by_name[n].updateable and n != (external_id_field or "")
                ]
                if not_updateable and not allow_system_fields:
                    outcomes[index].error = RecordError(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {', '.join(not_updateable)}. Please check the "
                        "security settings of this field and verify that it is read/write for your "
                        "profile or permission set.",
                        not_updateable,
                    )
                    continue
                changed = {n for n in values if n != "Id"}
            merged.update({k: v for k, v in values.items() if k != "Id" or target is None})
            previous = existing[target] if target is not None else None
            pending.append(_Pending(index, target, merged, changed, previous))
        return self._merge_repeats(pending)

    @staticmethod
    def _merge_repeats(pending: list[_Pending]) -> list[_Pending]:
        """Several updates to one record in a batch apply in order onto each other."""
        by_target: dict[str, _Pending] = {}
        for item in pending:
            if item.record_id is None:
                continue
            earlier = by_target.get(item.record_id)
            if earlier is not None:
                base = dict(earlier.values)
                base.update({k: item.values[k] for k in item.changed})
                item.values = base
                item.changed |= earlier.changed
                item.previous = earlier.previous
            by_target[item.record_id] = item
        return pending

    def _coerce_row(
        self,
        spec: ObjectSpec,
        operation: str,
        row: dict[str, Any],
        external_id_field: str | None,
        allow_system_fields: bool,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, raw in row.items():
            field_spec = spec.field(name)
            assert field_spec is not None, name  # unknown headers fail the whole job before this point
            if field_spec.name == "Id":
                if operation in ("update", "upsert") or allow_system_fields:
                    if raw is None or normalize_id(str(raw)) is None or object_of_id(str(raw)) is not spec:
                        raise RecordError(
                            "MALFORMED_ID", f"{spec.name} ID: id value of incorrect type: {raw}", ["Id"]
                        )
                    values["Id"] = normalize_id(str(raw))
                    continue
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: Id", ["Id"]
                )
            if not field_spec.createable and not allow_system_fields:
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {field_spec.name}. "
                    "Please check the security settings of this field.",
                    [field_spec.name],
                )
            values[field_spec.name] = coerce(field_spec, raw)
        if operation == "update" and "Id" not in values:
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        return values

    def _targets_by_id(
        self,
        spec: ObjectSpec,
        coerced: list[tuple[int, dict[str, Any]]],
        outcomes: list[Outcome],
        create_missing: bool,
    ) -> dict[int, str | None]:
        existing = self._fetch(spec, "Id", [v["Id"] for _, v in coerced if v.get("Id")])
        targets: dict[int, str | None] = {}
        for index, values in coerced:
            record_id = values.get("Id")
            record = existing.get(record_id) if record_id else None
            if record is None:
                if create_missing and not record_id:
                    targets[index] = None
                else:
                    outcomes[index].error = RecordError(
                        "NOT_FOUND" if record_id else "MISSING_ARGUMENT",
                        f"{spec.name} record not found: {record_id}" if record_id else "Id not specified",
                        ["Id"],
                    )
            elif record["IsDeleted"]:
                outcomes[index].error = RecordError("ENTITY_IS_DELETED", "entity is deleted", ["Id"])
            else:
                targets[index] = record_id
        return targets

    def _validate(self, spec: ObjectSpec, pending: list[_Pending], outcomes: list[Outcome]) -> None:
        required = spec.required_fields
        for item in pending:
            missing = [name for name in required if item.values.get(name) in (None, "")]
            if missing:
                outcomes[item.index].error = RecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
                )
        live = [p for p in pending if outcomes[p.index].error is None]
        self._check_unique(spec, live, outcomes)
        self._check_references(spec, [p for p in live if outcomes[p.index].error is None], outcomes)

    def _check_unique(self, spec: ObjectSpec, pending: list[_Pending], outcomes: list[Outcome]) -> None:
        for f in spec.fields:
            if not f.unique:
                continue
            candidates = [p for p in pending if f.name in p.changed and p.values.get(f.name) is not None]
            holders = self.find_live_by(spec, f.name, (p.values[f.name] for p in candidates))
            claimed: dict[Any, str] = {}
            for item in candidates:
                value = item.values[f.name]
                others = [rid for rid in holders.get(value, []) if rid != item.record_id]
                owner = others[0] if others else claimed.get(value)
                if owner is not None and owner != (item.record_id or f"#{item.index}"):
                    outcomes[item.index].error = RecordError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {f.name} duplicates value on record with id: "
                        f"{owner if not owner.startswith('#') else '<unknown>'}",
                        [f.name],
                    )
                else:
                    claimed[value] = item.record_id or f"#{item.index}"

    def _check_references(self, spec: ObjectSpec, pending: list[_Pending], outcomes: list[Outcome]) -> None:
        ref_fields = spec.reference_fields
        wanted: dict[str, set[str]] = {}
        for item in pending:
            for f in ref_fields:
                value = item.values.get(f.name)
                if value and f.name in item.changed:
                    target = object_of_id(value)
                    if target is not None and target.name in f.reference_to:
                        wanted.setdefault(target.name, set()).add(value)
        live: set[str] = set()
        inactive_users: set[str] = set()
        for target_name, ids in wanted.items():
            rows = self._fetch(OBJECTS[target_name], "Id", ids)
            live |= {rid for rid, row in rows.items() if not row["IsDeleted"]}
            if target_name == "User":
                inactive_users |= {rid for rid, row in rows.items() if row["IsActive"] == 0}
        for item in pending:
            for f in ref_fields:
                value = item.values.get(f.name)
                if not value or f.name not in item.changed:
                    continue
                target = object_of_id(value)
                if target is None or target.name not in f.reference_to or value not in live:
                    outcomes[item.index].error = RecordError(
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"invalid cross reference id: {f.name} = {value}",
                        [f.name],
                    )
                    break
                if f.name == "OwnerId" and value in inactive_users:
                    # Salesforce refuses to give a record to a deactivated User.
                    outcomes[item.index].error = RecordError(
                        "INACTIVE_OWNER_OR_USER",
                        f"operation performed with inactive user [{value}] as owner",
                        [f.name],
                    )
                    break

    def _write(
        self,
        spec: ObjectSpec,
        pending: list[_Pending],
        outcomes: list[Outcome],
        keep_audit: bool,
        publish: bool = True,
    ) -> None:
        stamp = self.next_stamp()
        names = [f.name for f in spec.fields]
        creates = [p for p in pending if p.record_id is None]
        new_ids = iter(self.allocate_ids(spec.key_prefix, sum(1 for p in creates if not p.values.get("Id"))))
        inserts, updates = [], {}
        for item in pending:
            values = item.values
            if item.record_id is None:
                values["Id"] = values.get("Id") or next(new_ids)
                for audit in AUDIT_FIELDS:
                    values[audit] = (values.get(audit) if keep_audit else None) or stamp
                values["IsDeleted"] = 0
                inserts.append(tuple(values[n] for n in names))
                outcomes[item.index].created = True
            else:
                if not (keep_audit and values.get("SystemModstamp")):
                    values["LastModifiedDate"] = values["SystemModstamp"] = stamp
                updates[item.record_id] = (*(values[n] for n in names[1:]), item.record_id)
            outcomes[item.index].record_id = values["Id"]
        events = [_change_event(spec, item) for item in pending] if publish else []
        columns = ", ".join(f'"{n}"' for n in names)
        assignments = ", ".join(f'"{n}" = ?' for n in names[1:])
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(
                f'INSERT INTO "{spec.table}" ({columns}) VALUES ({", ".join("?" * len(names))})', inserts
            )
            self.conn.executemany(
                f'UPDATE "{spec.table}" SET {assignments} WHERE "Id" = ?', list(updates.values())
            )
            self.events.append(events, stamp)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        if events:
            self.events.notify()

    def _delete(
        self,
        spec: ObjectSpec,
        rows: Sequence[dict[str, Any]],
        outcomes: list[Outcome],
        hard: bool,
        publish: bool = True,
    ) -> None:
        ids: list[str | None] = []
        for index, row in enumerate(rows):
            raw = next((v for k, v in row.items() if k.lower() == "id"), None)
            record_id = normalize_id(str(raw)) if raw else None
            if record_id is None or object_of_id(record_id) is not spec:
                outcomes[index].error = RecordError("MALFORMED_ID", f"bad id {raw}", ["Id"])
            ids.append(record_id)
        existing = self._fetch(spec, "Id", [i for i in ids if i])
        doomed = []
        for index, record_id in enumerate(ids):
            if outcomes[index].error is not None:
                continue
            record = existing.get(record_id)
            if record is None or (record["IsDeleted"] and not hard):
                code = "ENTITY_IS_DELETED" if record is not None else "NOT_FOUND"
                outcomes[index].error = RecordError(
                    code, "entity is deleted" if record else "record not found"
                )
                continue
            outcomes[index].record_id = record_id
            doomed.append(record_id)
        stamp = self.next_stamp()
        self.conn.execute("BEGIN")
        try:
            if hard:
                self.conn.executemany(f'DELETE FROM "{spec.table}" WHERE "Id" = ?', [(i,) for i in doomed])
            else:
                self.conn.executemany(
                    f'UPDATE "{spec.table}" SET "IsDeleted" = 1, "SystemModstamp" = ?, '
                    '"LastModifiedDate" = ? '
                    'WHERE "Id" = ?',
                    [(stamp, stamp, i) for i in doomed],
                )
            events = [PendingEvent(spec.name, "DELETE", i, {}, [], []) for i in doomed] if publish else []
            self.events.append(events, stamp)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        if publish and doomed:
            self.events.notify()

    # ------------------------------------------------------------ ingest job bookkeeping

    def save_job(self, info: dict[str, Any], **blobs: Any) -> None:
        with self.lock:
            self.conn.execute(
                "INSERT INTO _ingest_jobs (id, info) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET info = ?",
                (info["id"], json.dumps(info), json.dumps(info)),
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO _ingest_job_data (id, kind, content) VALUES (?, ?, ?)",
                [(info["id"], kind, value) for kind, value in blobs.items()],
            )

    def load_job(self, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.conn.execute("SELECT info FROM _ingest_jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def job_blob(self, job_id: str, column: str) -> Any:
        with self.lock:
            row = self.conn.execute(
                "SELECT content FROM _ingest_job_data WHERE id = ? AND kind = ?", (job_id, column)
            ).fetchone()
        return row[0] if row else None

    def jobs_in_state(self, *states: str) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.conn.execute("SELECT info FROM _ingest_jobs").fetchall()
        return [info for info in (json.loads(r[0]) for r in rows) if info["state"] in states]


def _change_event(spec: ObjectSpec, item: _Pending) -> PendingEvent:
    """The change event of one written record: a CREATE carries every set field; an UPDATE the fields whose
    value changed (and LastModifiedDate, as Salesforce lists it), with those set to null in `nulled`."""
    values = item.values
    if item.previous is None:
        fields = {n: v for n, v in values.items() if n not in NOT_IN_EVENTS and v is not None}
        return PendingEvent(spec.name, "CREATE", values["Id"], fields, [], [])
    changed = [
        n
        for n in (f.name for f in spec.fields)
        if n not in NOT_IN_EVENTS
        and (n == "LastModifiedDate" or (n in item.changed and values.get(n) != item.previous.get(n)))
    ]
    nulled = [n for n in changed if values.get(n) is None]
    return PendingEvent(
        spec.name, "UPDATE", values["Id"], {n: values.get(n) for n in changed}, changed, nulled
    )
