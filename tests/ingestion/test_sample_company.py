"""The sample company generator: deterministic, contract columns, idempotent, appends, Salesforce seed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from local_stack.sample_company import STREAMS, append_rows, generate, generate_salesforce_org
from local_stack.sample_company.__main__ import main
from local_stack.sample_company.landing import iter_existing_rows

CONTRACT_COLUMNS = {
    "workspaces": "workspace_id, name, domain, industry, employee_count, country, plan, created_at, "
    "updated_at",
    "users": "user_id, workspace_id, email, first_name, last_name, title, role, created_at",
    "signups": "signup_id, user_id, workspace_id, email, first_name, last_name, company, title, utm_source, "
    "campaign_id, signed_up_at",
    "subscriptions": "subscription_id, workspace_id, plan, seats, monthly_amount, status, started_at, "
    "canceled_at, updated_at",
    "invoices": "invoice_id, subscription_id, workspace_id, amount, status, issued_at, due_at",
    "payments": "payment_id, invoice_id, amount, method, paid_at",
    "usage_events": "event_id, workspace_id, user_id, event_type, quantity, occurred_at",
    "campaigns": "campaign_id, name, channel, started_on, ended_on, budget",
    "ad_spend": "spend_id, campaign_id, spend_date, impressions, clicks, spend",
}
CSV_STREAMS = {name for name, spec in STREAMS.items() if spec.format == "csv"}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(root: Path, stream: str) -> list[dict]:
    return list(iter_existing_rows(root / stream, STREAMS[stream]))


def test_same_seed_and_scale_write_byte_identical_files(tmp_path: Path) -> None:
    generate(tmp_path / "a", scale=0.1, seed=7)
    generate(tmp_path / "b", scale=0.1, seed=7)
    generate(tmp_path / "c", scale=0.1, seed=8)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_second_run_keeps_files_and_mtimes(tmp_path: Path) -> None:
    generate(tmp_path, scale=0.05, seed=1)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()}
    generate(tmp_path, scale=0.05, seed=1)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_an_edited_or_other_seed_file_is_kept_unless_overwrite_is_asked(tmp_path: Path) -> None:
    generate(tmp_path, scale=0.05, seed=1)
    edited = tmp_path / "campaigns" / "part-00001.csv"
    edited.write_text(edited.read_text().replace("Paid Search", "Edited by hand"))
    removed = tmp_path / "ad_spend" / "part-00001.csv"
    removed.unlink()
    mine = edited.read_bytes()

    generate(tmp_path, scale=0.05, seed=1)
    assert edited.read_bytes() == mine, "the generator replaced a file the user edited"
    assert removed.exists(), "a missing file is written"
    generate(tmp_path, scale=0.05, seed=2)  # another seed: still never replaces what is there
    assert edited.read_bytes() == mine

    main(["--scale", "0.05", "--seed", "1", "--landing-dir", str(tmp_path)])
    assert edited.read_bytes() == mine
    main(["--scale", "0.05", "--seed", "1", "--landing-dir", str(tmp_path), "--overwrite"])
    generate(tmp_path / "fresh", scale=0.05, seed=1)
    assert edited.read_bytes() == (tmp_path / "fresh" / "campaigns" / "part-00001.csv").read_bytes()


def test_every_stream_has_exactly_the_contract_columns(tmp_path: Path) -> None:
    generate(tmp_path, scale=0.05, seed=3)
    for stream, expected in CONTRACT_COLUMNS.items():
        columns = expected.split(", ")
        files = sorted((tmp_path / stream).iterdir())
        assert [f.suffix for f in files] == [f".{STREAMS[stream].format}"], stream
        if stream in CSV_STREAMS:
            with files[0].open(newline="") as handle:
                assert next(csv.reader(handle)) == columns, stream
        else:
            keys = {tuple(json.loads(line)) for line in files[0].read_text().splitlines()}
            assert keys == {tuple(columns)}, stream


def test_rows_reference_existing_parents_and_ids_are_unique(tmp_path: Path) -> None:
    generate(tmp_path, scale=0.1, seed=5)
    workspaces = {r["workspace_id"] for r in _rows(tmp_path, "workspaces")}
    users = {r["user_id"]: r["workspace_id"] for r in _rows(tmp_path, "users")}
    invoices = {r["invoice_id"] for r in _rows(tmp_path, "invoices")}
    events = _rows(tmp_path, "usage_events")
    assert len(workspaces) == 30 and set(users.values()) <= workspaces
    assert all(users[e["user_id"]] == e["workspace_id"] for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    assert {p["invoice_id"] for p in _rows(tmp_path, "payments")} <= invoices
    statuses = {r["status"] for r in _rows(tmp_path, "subscriptions")}
    assert statuses <= {"trialing", "active", "canceled", "past_due"} and len(statuses) >= 3
    assert all(r["occurred_at"].endswith("Z") and r["occurred_at"][10] == "T" for r in events)


def test_large_scale_streams_rows_across_rolling_files(tmp_path: Path) -> None:
    counts = generate(tmp_path, scale=0.2, seed=2, rows_per_file=1000)
    events = sorted((tmp_path / "usage_events").iterdir())
    assert len(events) == -(-counts["usage_events"] // 1000)
    assert len(_rows(tmp_path, "usage_events")) == counts["usage_events"]


def test_append_rows_as_new_drop_continues_ids_after_existing_rows(tmp_path: Path) -> None:
    counts = generate(tmp_path, scale=0.05, seed=4)
    path = append_rows(tmp_path, "usage_events", 3, seed=9)
    new = [json.loads(line) for line in path.read_text().splitlines()]
    assert path.parent == tmp_path / "usage_events" and len(new) == 3
    first = counts["usage_events"] + 1
    assert [r["event_id"] for r in new] == [f"evt_{n:09d}" for n in range(first, first + 3)]
    users = {r["user_id"]: r["workspace_id"] for r in _rows(tmp_path, "users")}
    assert all(users[r["user_id"]] == r["workspace_id"] for r in new)


def test_append_rows_onto_existing_csv_adds_rows_without_a_second_header(tmp_path: Path) -> None:
    generate(tmp_path, scale=0.05, seed=4)
    target = tmp_path / "campaigns" / "part-00001.csv"
    before = target.read_text().splitlines()
    append_rows(tmp_path, "campaigns", 2, seed=1, file="part-00001.csv")
    after = target.read_text().splitlines()
    assert after[: len(before)] == before and len(after) == len(before) + 2
    assert after.count(before[0]) == 1


def test_append_rows_rejects_unknown_stream(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown stream 'orders'"):
        append_rows(tmp_path, "orders", 1, seed=1)


SALESFORCE_FIELDS = {
    "User": {"Username", "FirstName", "LastName", "Email", "Title", "IsActive", "Department", "Territory__c"},
    "Account": {
        "Name",
        "Website",
        "Industry",
        "NumberOfEmployees",
        "BillingCountry",
        "OwnerId",
        "Workspace_Id__c",
        "ARR__c",
        "Plan__c",
    },
    "Lead": {
        "FirstName",
        "LastName",
        "Company",
        "Email",
        "Title",
        "Status",
        "LeadSource",
        "OwnerId",
        "Signup_Id__c",
        "Workspace_Id__c",
        "Product_Usage_Score__c",
        "Active_Users__c",
        "Last_Active_At__c",
        "IsConverted",
    },
    "Contact": {"AccountId", "FirstName", "LastName", "Email", "Title", "OwnerId", "User_Id__c"},
    "Opportunity": {
        "Name",
        "AccountId",
        "StageName",
        "CloseDate",
        "Amount",
        "Type",
        "OwnerId",
        "Workspace_Id__c",
    },
}


def test_salesforce_org_uses_contract_fields_and_resolvable_external_id_references(tmp_path: Path) -> None:
    org = generate_salesforce_org(scale=1, seed=42)
    assert org == generate_salesforce_org(scale=1, seed=42)
    assert list(org) == ["User", "Account", "Lead", "Contact", "Opportunity"]
    for sobject, records in org.items():
        assert records, sobject
        assert all(set(r) <= SALESFORCE_FIELDS[sobject] for r in records), sobject
    usernames = {u["Username"] for u in org["User"]}
    accounts = {a["Workspace_Id__c"] for a in org["Account"]}
    assert len(accounts) == len(org["Account"])
    for sobject in ("Account", "Lead", "Contact", "Opportunity"):
        assert {r["OwnerId"] for r in org[sobject]} <= usernames
    assert {r["AccountId"] for r in org["Contact"] + org["Opportunity"]} <= accounts
    generate(tmp_path, scale=1, seed=42)
    paying = {
        r["workspace_id"] for r in _rows(tmp_path, "subscriptions") if r["status"] in ("active", "past_due")
    }
    assert accounts <= paying
