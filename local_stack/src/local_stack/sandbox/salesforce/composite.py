"""sObject Collections (`/composite/sobjects`): create (POST) or update (PATCH) up to 200 records of any
types in one call, each answered on its own, or none written when `allOrNone` is set and one fails."""

from __future__ import annotations

from typing import Any

from local_stack.sandbox.salesforce.errors import ApiError
from local_stack.sandbox.salesforce.schema import ObjectSpec, find_object
from local_stack.sandbox.salesforce.store import Org, Outcome, RecordError

MAX_RECORDS = 200
ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)


def save_collection(org: Org, operation: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-record results of an sObject Collections insert or update request `body`."""
    records = body.get("records")
    if not isinstance(records, list) or not records:
        raise ApiError(400, "INVALID_FIELD", "records: the request must contain a non-empty 'records' list")
    if len(records) > MAX_RECORDS:
        raise ApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call",
        )
    outcomes = [Outcome() for _ in records]
    groups = _groups(records, outcomes)
    if body.get("allOrNone"):
        # Check every record first: a failure anywhere leaves the org untouched.
        for spec, indexes, rows in groups:
            for index, outcome in zip(indexes, org.apply(spec, operation, rows, write=False), strict=True):
                outcomes[index].error = outcome.error
        if any(o.error is not None for o in outcomes):
            return [_result(o if o.error else Outcome(error=ROLLED_BACK)) for o in outcomes]
    for spec, indexes, rows in groups:
        for index, outcome in zip(indexes, org.apply(spec, operation, rows), strict=True):
            outcomes[index] = outcome
    return [_result(o) for o in outcomes]


def _groups(
    records: list[Any], outcomes: list[Outcome]
) -> list[tuple[ObjectSpec, list[int], list[dict[str, Any]]]]:
    """Records by sObject type (from each record's attributes), in first-seen order, with their indexes;
    a record without a known type or with an unknown field fails on its own."""
    groups: dict[str, tuple[ObjectSpec, list[int], list[dict[str, Any]]]] = {}
    for index, record in enumerate(records):
        attributes = record.get("attributes") if isinstance(record, dict) else None
        spec = find_object(str((attributes or {}).get("type", "")))
        if spec is None:
            outcomes[index].error = RecordError(
                "INVALID_TYPE", "Must specify a valid sObject type in attributes"
            )
            continue
        row = {k: v for k, v in record.items() if k != "attributes"}
        unknown = [k for k in row if spec.field(k) is None]
        if unknown:
            outcomes[index].error = RecordError(
                "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {spec.name}", unknown[:1]
            )
            continue
        group = groups.setdefault(spec.name, (spec, [], []))
        group[1].append(index)
        group[2].append(row)
    return list(groups.values())


def _result(outcome: Outcome) -> dict[str, Any]:
    if outcome.error is None:
        return {"id": outcome.record_id, "success": True, "errors": []}
    error = outcome.error
    return {
        "success": False,
        "errors": [{"statusCode": error.code, "message": error.message, "fields": error.fields}],
    }
