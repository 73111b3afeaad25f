"""Which fields a stream extracts and their JSON types, from the tap's `streams` setting and the object's
describe (`/services/data/vXX/sobjects/<Object>/describe`), fetched when the tap runs.

A stream declares `fields: "*"` (every field the describe lists that Bulk API 2.0 can query, minus
`exclude`) or a list of field names (checked against the describe). The key and replication fields (Id,
SystemModstamp) and the other audit fields (CreatedDate, LastModifiedDate, IsDeleted), when the object has
them, are always extracted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ALL_FIELDS = "*"
KEY = "Id"
REPLICATION_KEY = "SystemModstamp"
AUDIT_FIELDS = (KEY, "CreatedDate", "LastModifiedDate", REPLICATION_KEY, "IsDeleted")
# Salesforce field type -> JSON schema. Unlisted types (id, string, reference, picklist, multipicklist,
# textarea, email, phone, url, combobox, encryptedstring, anyType, …) are strings; so is time
# ("13:45:00.000Z": loaders' TIME columns refuse the zone suffix).
JSON_SCHEMAS: dict[str, dict[str, Any]] = {
    "boolean": {"type": ["boolean", "null"]},
    "int": {"type": ["integer", "null"]},
    "long": {"type": ["integer", "null"]},
    "double": {"type": ["number", "null"]},
    "currency": {"type": ["number", "null"]},
    "percent": {"type": ["number", "null"]},
    "date": {"type": ["string", "null"], "format": "date"},
    "datetime": {"type": ["string", "null"], "format": "date-time"},
}
STRING_SCHEMA: dict[str, Any] = {"type": ["string", "null"]}
# Compound fields (their parts are separate fields) and blobs: Bulk API 2.0 queries refuse them.
NOT_QUERYABLE_TYPES = frozenset({"address", "location", "base64", "complexvalue"})
_STREAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class StreamConfigError(ValueError):
    """The `streams` setting or an object's describe does not allow the stream; the message says which."""


@dataclass(frozen=True)
class StreamConfig:
    name: str
    sobject: str
    fields: str | tuple[str, ...]
    exclude: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"streams[name={self.name}] (object {self.sobject})"


def parse_streams(entries: Any) -> list[StreamConfig]:
    """The `streams` setting: [{name, object, fields: "*" | [names], exclude: [names]}, …]."""
    if not isinstance(entries, list) or not entries:
        raise StreamConfigError(
            "Setting `streams` is required: a list of {name, object, fields} entries, e.g. "
            '[{"name": "case", "object": "Case", "fields": "*"}] (see docs/salesforce.md)'
        )
    streams: list[StreamConfig] = []
    for index, entry in enumerate(entries):
        where = f"streams[{index}]"
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("object"):
            raise StreamConfigError(f"{where}: each entry needs `name` (the stream) and `object` (API name)")
        name, fields = str(entry["name"]), entry.get("fields", ALL_FIELDS)
        if not _STREAM_NAME.match(name):
            raise StreamConfigError(f"{where}: stream name {name!r} must be lower_snake_case")
        if name in {s.name for s in streams}:
            raise StreamConfigError(f"{where}: stream {name!r} is declared twice")
        if fields != ALL_FIELDS and not (
            isinstance(fields, list) and all(isinstance(f, str) for f in fields)
        ):
            raise StreamConfigError(f'{where} ({name}): `fields` is "*" or a list of field names')
        exclude = entry.get("exclude") or []
        if exclude and fields != ALL_FIELDS:
            raise StreamConfigError(f'{where} ({name}): `exclude` goes with fields: "*" only')
        streams.append(
            StreamConfig(
                name,
                str(entry["object"]),
                ALL_FIELDS if fields == ALL_FIELDS else tuple(fields),
                tuple(str(f) for f in exclude),
            )
        )
    return streams


def field_schema(salesforce_type: str) -> dict[str, Any]:
    return dict(JSON_SCHEMAS.get(salesforce_type, STRING_SCHEMA))


def stream_schema(stream: StreamConfig, describe: dict[str, Any]) -> dict[str, Any]:
    """The stream's JSON schema: the chosen fields of the describe, in the describe's order."""
    types = {f["name"]: str(f["type"]) for f in describe.get("fields") or []}
    for required in (KEY, REPLICATION_KEY):
        if required not in types:
            raise StreamConfigError(
                f"{stream.where}: the object has no {required} field, so it cannot be extracted "
                "incrementally by key; leave it out of `streams`"
            )
    if stream.fields == ALL_FIELDS:
        excluded = set(stream.exclude) - set(AUDIT_FIELDS)
        chosen = [n for n, t in types.items() if t not in NOT_QUERYABLE_TYPES and n not in excluded]
    else:
        unknown = [f for f in stream.fields if f not in types]
        if unknown:
            raise StreamConfigError(
                f"{stream.where}: no field {', '.join(unknown)} in its describe (its fields: "
                f'{", ".join(types)}); fix `fields` or use "*"'
            )
        compound = [f for f in stream.fields if types[f] in NOT_QUERYABLE_TYPES]
        if compound:
            raise StreamConfigError(
                f"{stream.where}: {', '.join(compound)} cannot be queried with Bulk API 2.0 (compound or "
                "base64 fields); list their component fields instead (BillingCity, …)"
            )
        wanted = {*stream.fields, *AUDIT_FIELDS}
        chosen = [n for n in types if n in wanted]
    return {"type": "object", "properties": {name: field_schema(types[name]) for name in chosen}}


def json_kind(schema: dict[str, Any]) -> str:
    """A property's JSON type without null: boolean, integer, number or string."""
    types = schema.get("type") or ["string"]
    types = [types] if isinstance(types, str) else types
    return next((t for t in types if t != "null"), "string")


def parse_value(kind: str, text: str) -> Any:
    """A Bulk CSV cell -> its JSON value (empty cells are nulls)."""
    if text == "":
        return None
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "integer":
        return int(float(text))
    if kind == "number":
        return float(text)
    return text
