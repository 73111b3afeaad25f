"""The REST API's side of the org: describe, records as JSON, single-record writes and SOQL query pages
(with the cursors that page through them)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from typing import Any

from local_stack.sandbox.salesforce.errors import ApiError
from local_stack.sandbox.salesforce.schema import (
    NUMBER_TYPES,
    OBJECTS,
    SYSTEM_FIELDS,
    FieldSpec,
    ObjectSpec,
    normalize_id,
)
from local_stack.sandbox.salesforce.soql import CompiledQuery, compile_soql
from local_stack.sandbox.salesforce.store import Org, Outcome

QUERY_BATCH = 2000


class RestApi:
    """REST calls on the org; open query cursors live here until their next page is fetched."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.lock = threading.Lock()
        self.cursors: dict[str, tuple[list[dict[str, Any]], int]] = {}

    # ------------------------------------------------------------ sObject rows

    def read(self, spec: ObjectSpec, record_id: str, fields: str | None, api_version: str) -> dict[str, Any]:
        """A live record, optionally only the comma-separated `fields` (and Id)."""
        record = self.org.get(spec, normalize_id(record_id) or record_id)
        if record is None or record["IsDeleted"]:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if fields:
            wanted = {f.strip().lower() for f in fields.split(",")}
            record = {k: val for k, val in record.items() if k.lower() in wanted or k == "Id"}
        return record_json(spec, api_version, record)

    def write(
        self,
        spec: ObjectSpec,
        operation: str,
        body: dict[str, Any],
        *,
        record_id: str | None = None,
        external_id: tuple[str, str] | None = None,
    ) -> Outcome:
        """Insert, update (`record_id`) or upsert (`external_id` = (field, value)) one record."""
        row = {}
        for name, value in body.items():
            if name == "attributes":
                continue
            if spec.field(name) is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {spec.name}"
                )
            row[name] = value
        if record_id is not None:
            normalized = normalize_id(record_id)
            if normalized is None:
                raise ApiError(
                    400, "MALFORMED_ID", f"{spec.name} ID: id value of incorrect type: {record_id}"
                )
            row["Id"] = normalized
        key = None
        if external_id is not None:
            key_spec = spec.field(external_id[0])
            if key_spec is None or not key_spec.external_id:
                raise ApiError(
                    404,
                    "NOT_FOUND",
                    f"Provided external ID field does not exist or is not accessible: {external_id[0]}",
                )
            key = key_spec.name
            row[key] = external_id[1]
        return _succeeded(self.org.apply(spec, operation, [row], external_id_field=key)[0])

    def delete(self, spec: ObjectSpec, record_id: str) -> None:
        _succeeded(self.org.apply(spec, "delete", [{"Id": record_id}])[0])

    # ------------------------------------------------------------ SOQL

    def query(self, soql: str, include_deleted: bool, api_version: str) -> dict[str, Any]:
        compiled = compile_soql(soql)
        if compiled.count_only:
            (count,) = next(self.org.run_query(compiled, include_deleted))
            return {"totalSize": count, "done": True, "records": []}
        records = [
            _query_record(compiled, api_version, row) for row in self.org.run_query(compiled, include_deleted)
        ]
        return self._page(records, 0, api_version)

    def query_more(self, cursor: str, api_version: str) -> dict[str, Any]:
        with self.lock:
            entry = self.cursors.pop(cursor.rsplit("-", 1)[0], None)
        if entry is None:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        records, offset = entry
        return self._page(records, offset, api_version)

    def _page(self, records: list[dict[str, Any]], offset: int, api_version: str) -> dict[str, Any]:
        following = offset + QUERY_BATCH
        body: dict[str, Any] = {
            "totalSize": len(records),
            "done": following >= len(records),
            "records": records[offset:following],
        }
        if not body["done"]:
            cursor = f"01g8d{secrets.token_hex(6)}"
            with self.lock:
                self.cursors[cursor] = (records, following)
            body["nextRecordsUrl"] = f"/services/data/{api_version}/query/{cursor}-{following}"
        return body


def _succeeded(outcome: Outcome) -> Outcome:
    """The outcome of a one-record write, or its error as the REST response."""
    if outcome.error is not None:
        status = 404 if outcome.error.code == "NOT_FOUND" else 400
        raise ApiError(status, outcome.error.code, outcome.error.message, fields=outcome.error.fields)
    return outcome


def _query_record(compiled: CompiledQuery, api_version: str, row: tuple) -> dict[str, Any]:
    """A query row as Salesforce answers it: a parent's fields nest under its relationship name, as a
    record with attributes, or null when the lookup is empty."""
    width = len(compiled.fields)
    own = [(f, v) for f, v in zip(compiled.fields, row[:width], strict=True) if "." not in f.name]
    record = record_json(compiled.sobject, api_version, {f.name: v for f, v in own}, [f for f, _ in own])
    parent_ids = dict(zip(compiled.parents, row[width:], strict=True))
    for spec, value in zip(compiled.fields, row[:width], strict=True):
        relationship, _, name = spec.name.partition(".")
        if not name:
            continue
        if parent_ids[relationship] is None:
            record[relationship] = None
            continue
        parent = record.get(relationship) or {
            "attributes": _attributes(compiled.parents[relationship], api_version, parent_ids[relationship])
        }
        parent[name] = render_json(spec.type, value)
        record[relationship] = parent
    return record


def record_json(
    spec: ObjectSpec, api_version: str, values: dict[str, Any], fields: Sequence[FieldSpec] | None = None
) -> dict[str, Any]:
    types = {f.name: f.type for f in (fields or spec.fields)}
    record: dict[str, Any] = {"attributes": _attributes(spec, api_version, values.get("Id", ""))}
    for name, value in values.items():
        record[name] = render_json(types.get(name, "string"), value)
    return record


def _attributes(spec: ObjectSpec, api_version: str, record_id: str) -> dict[str, str]:
    return {"type": spec.name, "url": f"/services/data/{api_version}/sobjects/{spec.name}/{record_id}"}


def render_json(field_type: str, value: Any) -> Any:
    if value is None:
        return None
    if field_type == "boolean":
        return bool(value)
    if field_type == "int":
        return int(value)
    if field_type in NUMBER_TYPES:
        return float(value)
    if field_type == "datetime":
        return str(value).replace("Z", "+0000")
    return value


# ---------------------------------------------------------------- describe


def describe_global(api_version: str) -> dict[str, Any]:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [
            {
                "name": s.name,
                "label": s.name,
                "keyPrefix": s.key_prefix,
                "queryable": True,
                "createable": True,
                "updateable": True,
                "urls": {"describe": f"/services/data/{api_version}/sobjects/{s.name}/describe"},
            }
            for s in OBJECTS.values()
        ],
    }


def describe(spec: ObjectSpec, api_version: str) -> dict[str, Any]:
    return {
        "name": spec.name,
        "label": spec.name,
        "keyPrefix": spec.key_prefix,
        "custom": spec.custom,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "urls": {"sobject": f"/services/data/{api_version}/sobjects/{spec.name}"},
        "fields": [_describe_field(f) for f in spec.fields],
    }


def _describe_field(f: FieldSpec) -> dict[str, Any]:
    return {
        "name": f.name,
        "label": f.name,
        "type": f.type,
        "length": f.length if f.type not in ("int", "boolean", "date", "datetime", *NUMBER_TYPES) else 0,
        "nillable": f.nillable,
        "createable": f.createable,
        "updateable": f.updateable,
        "externalId": f.external_id,
        "unique": f.unique,
        "idLookup": f.external_id or f.name == "Id",
        "custom": f.name.endswith("__c"),
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "defaultedOnCreate": f.default is not None or f.name in SYSTEM_FIELDS,
        "defaultValue": f.default if f.type != "boolean" else (f.default == "true" if f.default else None),
        "precision": 18 if f.type in NUMBER_TYPES else 0,
        "scale": 2 if f.type in ("currency", "percent") else 0,
    }
