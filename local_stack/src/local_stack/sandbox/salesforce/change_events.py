"""Change Data Capture in the sandbox: the event log every write appends to, and events as Avro.

Every committed write (REST, sObject Collections, Bulk 2.0 ingest) appends one change event per record to
the `_change_events` table in the same SQLite transaction as the records, so an event exists exactly when
its change does; its row number is its replay id. Seeding an empty org publishes nothing (the org's
starting state, as if CDC was enabled afterwards).

The events look like a real org's on the Pub/Sub API: an Avro record `<Object>ChangeEvent` (namespace
com.sforce.eventbus) with a `ChangeEventHeader` (entityName, recordIds, changeType, changeOrigin,
transactionKey, sequenceNumber, commitTimestamp, commitNumber, commitUser, and the bitmap fields
nulledFields / diffFields / changedFields: hex strings whose bit i is the schema's field i) followed by the
object's fields, all nullable; an UPDATE carries only the changed fields' values, a DELETE none. The
sandbox sends one event per record (a real org may merge identical changes into one event with several
recordIds; consumers read `recordIds` as a list either way).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import fastavro

from local_stack.sandbox.salesforce.schema import INTEGRATION_USER_ID, NUMBER_TYPES, OBJECTS, ObjectSpec

ALL_CHANGE_EVENTS = "/data/ChangeEvents"
CHANNEL_PREFIX = "/data/"
# Record fields a change event leaves out, as Salesforce does (the Id travels in recordIds).
NOT_IN_EVENTS = frozenset({"Id", "IsDeleted", "SystemModstamp"})
CHANGE_TYPES = (
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
    "SNAPSHOT",
)
_AVRO_TYPES = {
    "boolean": "boolean",
    "int": "int",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "date": "long",  # epoch milliseconds, as the Pub/Sub API sends dates
    "datetime": "long",
}


def channel_of(spec: ObjectSpec) -> str:
    return f"{CHANNEL_PREFIX}{spec.name}ChangeEvent"


def channel_objects(topic: str) -> tuple[str, ...] | None:
    """The objects whose events a channel carries, or None when the org has no such channel."""
    if topic == ALL_CHANGE_EVENTS:
        return tuple(OBJECTS)
    for spec in OBJECTS.values():
        if topic == channel_of(spec):
            return (spec.name,)
    return None


# ---------------------------------------------------------------- Avro schemas


def _header_schema() -> dict[str, Any]:
    strings = {"type": "array", "items": "string"}
    return {
        "type": "record",
        "name": "ChangeEventHeader",
        "namespace": "com.sforce.eventbus",
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": strings},
            {
                "name": "changeType",
                "type": {"type": "enum", "name": "ChangeType", "symbols": list(CHANGE_TYPES)},
            },
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": strings},
            {"name": "diffFields", "type": strings},
            {"name": "changedFields", "type": strings},
        ],
    }


@dataclass(frozen=True)
class EventSchema:
    entity: str
    schema_id: str
    schema_json: str
    parsed: Any
    positions: dict[str, int]
    """Field name -> its position in the schema (the bit in changedFields / nulledFields)."""
    types: dict[str, str]


@cache
def event_schema(entity: str) -> EventSchema:
    spec = OBJECTS[entity]
    fields = [{"name": "ChangeEventHeader", "type": _header_schema(), "doc": "Data:ComplexValueType"}]
    for f in spec.fields:
        if f.name not in NOT_IN_EVENTS:
            avro_type = _AVRO_TYPES.get(f.type, "string")
            fields.append(
                {"name": f.name, "type": ["null", avro_type], "default": None, "doc": f"Data:{f.type}"}
            )
    schema = {
        "type": "record",
        "name": f"{entity}ChangeEvent",
        "namespace": "com.sforce.eventbus",
        "fields": fields,
    }
    schema_json = json.dumps(schema, separators=(",", ":"))
    schema_id = hashlib.sha256(schema_json.encode()).hexdigest()[:22]
    return EventSchema(
        entity=entity,
        schema_id=schema_id,
        schema_json=schema_json,
        parsed=fastavro.parse_schema(schema),
        positions={field["name"]: index for index, field in enumerate(fields)},
        types={f.name: f.type for f in spec.fields},
    )


def schema_by_id(schema_id: str) -> EventSchema | None:
    return next((s for s in map(event_schema, OBJECTS) if s.schema_id == schema_id), None)


def bitmap(positions: Sequence[int]) -> list[str]:
    """Salesforce's bitmap field: ["0x<hex>"] with bit i set for field position i; [] for no field."""
    if not positions:
        return []
    value = sum(1 << p for p in set(positions))
    digits = f"{value:X}"
    return ["0x" + digits.rjust(len(digits) + len(digits) % 2, "0")]


def _avro_value(field_type: str, value: Any) -> Any:
    if value is None:
        return None
    if field_type == "boolean":
        return bool(value)
    if field_type == "int":
        return int(value)
    if field_type in NUMBER_TYPES:
        return float(value)
    if field_type == "datetime":
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return int(moment.timestamp() * 1000)
    if field_type == "date":
        day = date.fromisoformat(str(value)[:10])
        return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return str(value)


# ---------------------------------------------------------------- the log


@dataclass(frozen=True)
class ChangeEvent:
    replay: int
    entity: str
    change_type: str
    record_ids: list[str]
    changed: list[str]
    nulled: list[str]
    values: dict[str, Any]
    origin: str
    transaction_key: str
    sequence: int
    commit_timestamp: int

    def payload(self) -> bytes:
        """The event as Salesforce sends it: Avro binary, no container, in its entity's schema."""
        schema = event_schema(self.entity)
        header = {
            "entityName": self.entity,
            "recordIds": self.record_ids,
            "changeType": self.change_type,
            "changeOrigin": self.origin,
            "transactionKey": self.transaction_key,
            "sequenceNumber": self.sequence,
            "commitTimestamp": self.commit_timestamp,
            "commitNumber": self.replay,
            "commitUser": INTEGRATION_USER_ID,
            "nulledFields": bitmap([schema.positions[n] for n in self.nulled if n in schema.positions]),
            "diffFields": [],
            "changedFields": bitmap([schema.positions[n] for n in self.changed if n in schema.positions]),
        }
        record: dict[str, Any] = {"ChangeEventHeader": header}
        for name, value in self.values.items():
            if name in schema.positions:
                record[name] = _avro_value(schema.types[name], value)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema.parsed, record)
        return buffer.getvalue()


@dataclass
class PendingEvent:
    """A change on its way into the log, written in the transaction of the change itself."""

    entity: str
    change_type: str
    record_id: str
    values: dict[str, Any]
    changed: list[str]
    nulled: list[str]


class ChangeScope(threading.local):
    """Who is writing, for the events of the writes made on this thread: the API and client (changeOrigin)
    and the transaction key shared by the writes of one request."""

    origin: str = ""
    transaction_key: str | None = None


def change_origin(api: str, api_version: str, call_options: str | None) -> str:
    """changeOrigin as Salesforce records it: com/salesforce/api/<api>/<version>[;client=<client>], the
    client from the request's `Sforce-Call-Options: client=<name>` header."""
    version = api_version.lstrip("v")
    client = None
    for option in (call_options or "").replace(";", ",").split(","):
        key, _, value = option.strip().partition("=")
        if key.strip() == "client" and value.strip():
            client = value.strip()
    return f"com/salesforce/api/{api}/{version}" + (f";client={client}" if client else "")


class EventLog:
    """The org's change events in its SQLite file (the caller holds the org's lock and transaction)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.scope = ChangeScope()
        self.published = threading.Condition()
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _change_events (replay INTEGER PRIMARY KEY AUTOINCREMENT, "
            "entity TEXT NOT NULL, change_type TEXT NOT NULL, record_ids TEXT NOT NULL, "
            "changed TEXT NOT NULL, "
            "nulled TEXT NOT NULL, payload_values TEXT NOT NULL, origin TEXT NOT NULL, "
            "transaction_key TEXT NOT NULL, sequence INTEGER NOT NULL, commit_timestamp INTEGER NOT NULL)"
        )

    @contextmanager
    def writing_as(self, origin: str) -> Iterator[None]:
        """Writes on this thread in the block are one transaction made by `origin` (for their events)."""
        previous = (self.scope.origin, self.scope.transaction_key)
        self.scope.origin, self.scope.transaction_key = origin, uuid.uuid4().hex
        try:
            yield
        finally:
            self.scope.origin, self.scope.transaction_key = previous

    def append(self, events: Sequence[PendingEvent], stamp: str) -> None:
        """Append inside the caller's transaction; `stamp` is the change's SystemModstamp."""
        if not events:
            return
        commit_ms = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
        key = self.scope.transaction_key or uuid.uuid4().hex
        self.conn.executemany(
            "INSERT INTO _change_events (entity, change_type, record_ids, changed, nulled, payload_values, "
            "origin, transaction_key, sequence, commit_timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.entity,
                    e.change_type,
                    json.dumps([e.record_id]),
                    json.dumps(e.changed),
                    json.dumps(e.nulled),
                    json.dumps(e.values),
                    self.scope.origin,
                    key,
                    sequence,
                    commit_ms,
                )
                for sequence, e in enumerate(events, start=1)
            ],
        )

    def notify(self) -> None:
        """Wake subscribers once the transaction that appended events committed."""
        with self.published:
            self.published.notify_all()

    def bounds(self) -> tuple[int, int]:
        """(replay id just before the oldest retained event, newest replay id); (n, n) when none is kept."""
        low, high = self.conn.execute("SELECT min(replay), max(replay) FROM _change_events").fetchone()
        (sequence,) = self.conn.execute(
            "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = '_change_events'"
        ).fetchone() or (0,)
        if low is None:
            return sequence, sequence
        return low - 1, high

    def after(self, replay: int, entities: Sequence[str], limit: int) -> list[ChangeEvent]:
        marks = ", ".join("?" * len(entities))
        rows = self.conn.execute(
            f"SELECT replay, entity, change_type, record_ids, changed, nulled, payload_values, origin, "
            f"transaction_key, sequence, commit_timestamp FROM _change_events WHERE replay > ? "
            f"AND entity IN ({marks}) ORDER BY replay LIMIT ?",
            (replay, *entities, limit),
        ).fetchall()
        return [
            ChangeEvent(
                replay=row[0],
                entity=row[1],
                change_type=row[2],
                record_ids=json.loads(row[3]),
                changed=json.loads(row[4]),
                nulled=json.loads(row[5]),
                values=json.loads(row[6]),
                origin=row[7],
                transaction_key=row[8],
                sequence=row[9],
                commit_timestamp=row[10],
            )
            for row in rows
        ]

    def trim(self, through: int) -> None:
        """Forget events up to replay id `through` (Salesforce keeps them 72 hours; tests age them)."""
        self.conn.execute("DELETE FROM _change_events WHERE replay <= ?", (through,))
