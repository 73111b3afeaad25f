"""Bulk API 2.0's CSV: an ingest job's upload mapped onto an sObject and applied to the org, the result
files it leaves, and query result pages."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from local_stack.sandbox.salesforce.errors import ApiError
from local_stack.sandbox.salesforce.schema import NUMBER_TYPES, OBJECTS, FieldSpec, ObjectSpec
from local_stack.sandbox.salesforce.store import Org, Outcome, RecordError, format_number

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
NULL_VALUE = "#N/A"

Column = tuple[str, str | None]
"""A CSV column's field, and for `Account.Workspace_Id__c` columns the related External ID field."""
Injector = Callable[[int], RecordError | None]


@dataclass
class AppliedUpload:
    """What an ingest job's upload did: counts and the job's result files."""

    processed: int
    failed: int
    successful_csv: str
    failed_csv: str
    unprocessed_csv: str


def apply_upload(org: Org, info: dict[str, Any], upload: bytes, injected: Injector) -> AppliedUpload:
    """Apply an ingest job's upload; a header naming no field of the object raises ApiError."""
    sobject = OBJECTS[info["object"]]
    text = upload.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[info["columnDelimiter"]])
    header = next(reader, [])
    rows = [r for r in reader if any(cell != "" for cell in r)]
    columns = map_header(sobject, info["operation"], header)
    outcomes = _apply_rows(org, sobject, info, columns, rows, injected)
    successful = _csv_text(
        [["sf__Id", "sf__Created", *header]]
        + [
            [o.record_id, "true" if o.created else "false", *row]
            for row, o in zip(rows, outcomes, strict=True)
            if o.error is None
        ]
    )
    failed = _csv_text(
        [["sf__Id", "sf__Error", *header]]
        + [
            [o.record_id, str(o.error), *row]
            for row, o in zip(rows, outcomes, strict=True)
            if o.error is not None
        ]
    )
    return AppliedUpload(
        processed=len(rows),
        failed=sum(1 for o in outcomes if o.error is not None),
        successful_csv=successful,
        failed_csv=failed,
        unprocessed_csv=_csv_text([header]),
    )


def map_header(sobject: ObjectSpec, operation: str, header: list[str]) -> list[Column]:
    """CSV header -> (field, related External ID field or None); an unknown column fails the job."""
    columns: list[Column] = []
    for name in header:
        relation, _, related_field = name.strip().partition(".")
        if related_field:
            ref = next(
                (
                    f
                    for f in sobject.fields
                    if f.relationship_name and f.relationship_name.lower() == relation.lower()
                ),
                None,
            )
            target = OBJECTS.get(ref.reference_to[0]) if ref and len(ref.reference_to) == 1 else None
            key = target.field(related_field) if target else None
            if key is None or not key.external_id:
                raise ApiError(400, "InvalidBatch", f"InvalidBatch : Field name not found : {name}")
            columns.append((ref.name, key.name))
            continue
        spec = sobject.field(name.strip())
        if spec is None:
            raise ApiError(400, "InvalidBatch", f"InvalidBatch : Field name not found : {name}")
        columns.append((spec.name, None))
    if operation in ("delete", "hardDelete") and [c for c, _ in columns] != ["Id"]:
        raise ApiError(400, "InvalidBatch", "InvalidBatch : The 'delete' batch must contain only 'Id'")
    return columns


def _apply_rows(
    org: Org,
    sobject: ObjectSpec,
    info: dict[str, Any],
    columns: list[Column],
    rows: list[list[str]],
    injected: Injector,
) -> list[Outcome]:
    names = [name for name, _ in columns]
    # Bulk API: an empty cell leaves the field as it is; #N/A sets it to null.
    records = [
        {n: None if v == NULL_VALUE else v for n, v in zip(names, row, strict=False) if v != ""}
        for row in rows
    ]
    pre_errors: dict[int, RecordError] = {}
    related = [(name, key) for name, key in columns if key]
    if related:  # `Account.Workspace_Id__c` columns: External ID values become record Ids
        lookups = {(n, k): {r[n] for r in records if r.get(n) is not None} for n, k in related}
        resolved = _resolve_related(org, sobject, lookups)
        for index, record in enumerate(records):
            for name, key_field in related:
                key = record.get(name)
                if key is None:
                    continue
                record[name] = resolved[(name, key_field)].get(key)
                if record[name] is None:
                    pre_errors[index] = RecordError(
                        "INVALID_FIELD",
                        f"Foreign key external ID: {key} not found for field {key_field} in "
                        f"entity {OBJECTS[sobject.field(name).reference_to[0]].name}",
                        [name],
                    )

    def inject(index: int) -> RecordError | None:
        return pre_errors[index] if index in pre_errors else injected(index)

    return org.apply(
        sobject,
        info["operation"],
        records,
        external_id_field=info.get("externalIdFieldName"),
        inject_failure=inject,
    )


def _resolve_related(
    org: Org, sobject: ObjectSpec, lookups: dict[tuple[str, str], set[str]]
) -> dict[tuple[str, str], dict[str, str]]:
    """(field, External ID field) -> {External ID value: the one live record holding it}."""
    resolved = {}
    for (name, related), values in lookups.items():
        target = OBJECTS[sobject.field(name).reference_to[0]]
        with org.lock:
            matches = org.find_live_by(target, related, values)
        resolved[(name, related)] = {v: ids[0] for v, ids in matches.items() if len(ids) == 1}
    return resolved


def query_csv(fields: Sequence[FieldSpec], rows: Iterable[tuple], column_delimiter: str) -> str:
    """One page of a query job's results: a header of field names, then the rows."""
    out = io.StringIO()
    writer = csv.writer(
        out, quoting=csv.QUOTE_ALL, lineterminator="\n", delimiter=DELIMITERS.get(column_delimiter, ",")
    )
    writer.writerow([f.name for f in fields])
    for row in rows:
        writer.writerow([render_csv(f.type, v) for f, v in zip(fields, row, strict=True)])
    return out.getvalue()


def render_csv(field_type: str, value: Any) -> str:
    if value is None:
        return ""
    if field_type == "boolean":
        return "true" if value else "false"
    if field_type == "int" or field_type in NUMBER_TYPES:
        return format_number(value)
    return str(value)


def _csv_text(rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return out.getvalue()
