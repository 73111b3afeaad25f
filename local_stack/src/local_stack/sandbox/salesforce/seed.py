"""Seeding an org from a document {sObject: [records]}, as the sample company and tests load theirs."""

from __future__ import annotations

from typing import Any

from local_stack.sandbox.salesforce.errors import ApiError
from local_stack.sandbox.salesforce.schema import OBJECTS, ObjectSpec, find_object, normalize_id
from local_stack.sandbox.salesforce.store import Org

# Seed documents may name a referenced record by this key instead of its Id (the sample company does).
SEED_LOOKUP_KEYS = {
    "User": "Username",
    "Account": "Workspace_Id__c",
    "Lead": "Signup_Id__c",
    "Contact": "User_Id__c",
    "Opportunity": "Workspace_Id__c",
    "Campaign": "Campaign_Id__c",
}


def seed(org: Org, data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Insert records (keyed by sObject name) keeping given Ids and audit dates; report per-object counts."""
    unknown = [name for name in data if find_object(name) is None]
    if unknown:
        raise ApiError(400, "INVALID_TYPE", f"Seed data names unknown sObjects: {', '.join(unknown)}")
    report: dict[str, Any] = {}
    order = list(OBJECTS)  # the catalog lists parents first
    for name in sorted(data, key=lambda n: order.index(find_object(n).name)):
        spec = find_object(name)
        rows = [{k: v for k, v in record.items() if v is not None} for record in data[name]]
        for key in {key for row in rows for key in row}:
            if spec.field(key) is None:
                raise ApiError(400, "INVALID_FIELD", f"Seed record of {spec.name} has unknown field {key!r}")
        _resolve_seed_references(org, spec, rows)
        outcomes = org.apply(spec, "insert", rows, allow_system_fields=True, publish=False)
        errors = [f"{spec.name}[{i}]: {o.error}" for i, o in enumerate(outcomes) if o.error is not None]
        report[spec.name] = {
            "inserted": sum(1 for o in outcomes if o.error is None),
            "errors": errors[:20],
            "failed": len(errors),
        }
    return report


def _resolve_seed_references(org: Org, spec: ObjectSpec, rows: list[dict[str, Any]]) -> None:
    """Replace reference values that are not Ids by the Id of the record whose lookup key matches."""
    for ref in spec.reference_fields:
        keys = {
            row[ref.name] for row in rows if row.get(ref.name) and normalize_id(str(row[ref.name])) is None
        }
        if not keys:
            continue
        found: dict[str, str] = {}
        with org.lock:
            for target in ref.reference_to:
                lookup = SEED_LOOKUP_KEYS.get(target)
                if lookup:
                    matches = org.find_live_by(OBJECTS[target], lookup, keys)
                    found.update({k: ids[0] for k, ids in matches.items() if k not in found})
        for row in rows:
            value = row.get(ref.name)
            if value in keys and value in found:
                row[ref.name] = found[value]
