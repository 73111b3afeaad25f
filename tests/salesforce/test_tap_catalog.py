"""tap-salesforce-bulk's discovery: streams from its `streams` setting, fields and JSON types from the
object's describe (the sandbox's, over HTTP), including types and objects the sample company does not use."""

from __future__ import annotations

import sys

import pytest
from sf_helpers import credentials_for, fast_client

from local_stack.sandbox.salesforce import SandboxHandle, admin
from platform_assets.environment import MELTANO_PROJECT_DIR

# The tap runs in its own venv; its catalog module is plain Python, imported here from its source.
sys.path.insert(0, str(MELTANO_PROJECT_DIR / "extractors" / "tap-salesforce-bulk"))
from tap_salesforce_bulk.catalog import (
    StreamConfigError,
    json_kind,
    parse_streams,
    parse_value,
    stream_schema,
)

NULLABLE = {
    "string": {"type": ["string", "null"]},
    "boolean": {"type": ["boolean", "null"]},
    "integer": {"type": ["integer", "null"]},
    "number": {"type": ["number", "null"]},
    "date": {"type": ["string", "null"], "format": "date"},
    "date-time": {"type": ["string", "null"], "format": "date-time"},
}


def one(entry: dict) -> object:
    [config] = parse_streams([entry])
    return config


def describe(*fields: tuple[str, str]) -> dict:
    system = [("Id", "id"), ("SystemModstamp", "datetime"), ("IsDeleted", "boolean")]
    return {"fields": [{"name": n, "type": t} for n, t in (*system, *fields)]}


def test_every_salesforce_type_maps_to_a_json_type_and_compound_fields_are_left_out() -> None:
    payload = describe(
        ("Amount__c", "currency"),
        ("Share__c", "percent"),
        ("Count__c", "int"),
        ("Big__c", "long"),
        ("Ratio__c", "double"),
        ("Flag__c", "boolean"),
        ("Day__c", "date"),
        ("At__c", "datetime"),
        ("Clock__c", "time"),
        ("Tags__c", "multipicklist"),
        ("Phone__c", "phone"),
        ("Kind__c", "combobox"),
        ("Secret__c", "encryptedstring"),
        ("Parent__c", "reference"),
        ("Anything__c", "anyType"),
        ("Address__c", "address"),
        ("Where__c", "location"),
        ("Blob__c", "base64"),
    )
    properties = stream_schema(one({"name": "thing", "object": "Thing__c"}), payload)["properties"]
    assert properties == {
        "Id": NULLABLE["string"],
        "SystemModstamp": NULLABLE["date-time"],
        "IsDeleted": NULLABLE["boolean"],
        "Amount__c": NULLABLE["number"],
        "Share__c": NULLABLE["number"],
        "Count__c": NULLABLE["integer"],
        "Big__c": NULLABLE["integer"],
        "Ratio__c": NULLABLE["number"],
        "Flag__c": NULLABLE["boolean"],
        "Day__c": NULLABLE["date"],
        "At__c": NULLABLE["date-time"],
        "Clock__c": NULLABLE["string"],
        "Tags__c": NULLABLE["string"],
        "Phone__c": NULLABLE["string"],
        "Kind__c": NULLABLE["string"],
        "Secret__c": NULLABLE["string"],
        "Parent__c": NULLABLE["string"],
        "Anything__c": NULLABLE["string"],
    }
    assert [parse_value(json_kind(properties[f]), v) for f, v in [("Big__c", "12"), ("Share__c", "2.5")]] == [
        12,
        2.5,
    ]
    assert parse_value("boolean", "") is None


def test_a_declared_list_takes_those_fields_and_the_audit_fields_and_exclude_trims_all_fields() -> None:
    payload = describe(("Name", "string"), ("Secret__c", "string"), ("CreatedDate", "datetime"))
    listed = stream_schema(one({"name": "t", "object": "T", "fields": ["Name"]}), payload)["properties"]
    assert list(listed) == ["Id", "SystemModstamp", "IsDeleted", "Name", "CreatedDate"]
    trimmed = stream_schema(one({"name": "t", "object": "T", "exclude": ["Secret__c", "Id"]}), payload)
    assert list(trimmed["properties"]) == ["Id", "SystemModstamp", "IsDeleted", "Name", "CreatedDate"]


@pytest.mark.parametrize(
    ("entries", "payload", "message"),
    [
        (None, None, "Setting `streams` is required"),
        ([{"name": "Case", "object": "Case"}], None, "must be lower_snake_case"),
        ([{"name": "c", "object": "Case"}, {"name": "c", "object": "Case"}], None, "declared twice"),
        ([{"name": "c", "object": "Case", "fields": "Name"}], None, r'`fields` is "\*" or a list'),
        ([{"name": "c", "object": "Case", "fields": ["Nope"]}], describe(), "no field Nope in its describe"),
        ([{"name": "c", "object": "C", "fields": ["A"]}], describe(("A", "address")), "list their component"),
        ([{"name": "c", "object": "C"}], {"fields": [{"name": "Id", "type": "id"}]}, "has no SystemModstamp"),
    ],
)
def test_bad_stream_settings_say_which_stream_and_what_to_do(entries, payload, message) -> None:
    with pytest.raises(StreamConfigError, match=message):
        configs = parse_streams(entries)
        stream_schema(configs[0], payload)


def test_discovery_reads_the_sandbox_describe_of_case_a_custom_object_and_a_field_added_later(
    sandbox: SandboxHandle, added_fields: None
) -> None:
    client = fast_client(credentials_for(sandbox))
    case = stream_schema(one({"name": "cases", "object": "Case"}), client.describe("Case"))["properties"]
    assert case["SuppliedPhone"] == NULLABLE["string"]  # phone: a type the contract's objects do not use
    assert case["IsEscalated"] == NULLABLE["boolean"] and case["ClosedDate"] == NULLABLE["date-time"]
    custom_describe = client.describe("Subscription__c")
    assert custom_describe["custom"] is True
    custom = stream_schema(one({"name": "subscription__c", "object": "Subscription__c"}), custom_describe)
    assert {f: custom["properties"][f] for f in ("Discount__c", "Features__c", "Renewal_Date__c")} == {
        "Discount__c": NULLABLE["number"],  # percent
        "Features__c": NULLABLE["string"],  # multipicklist
        "Renewal_Date__c": NULLABLE["date"],
    }

    # An admin adds a field over HTTP (the sandbox key is its client secret); the next describe has it.
    added = admin(sandbox.url, "fields", {"object": "Case", "name": "Csat__c", "type": "percent"})
    assert added["fields"][-1]["name"] == "Csat__c"
    again = stream_schema(one({"name": "cases", "object": "Case"}), client.describe("Case"))["properties"]
    assert again["Csat__c"] == NULLABLE["number"]
    assert list(again)[: len(case)] == list(case)
