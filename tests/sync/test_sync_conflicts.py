"""Conflict policies: a field changed in Salesforce (through the sandbox's Bulk API, as a rep's edit would)
and in the model, decided per policy, recorded in sync_conflicts, on DuckDB and on Snowflake (fakesnow)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import dagster as dg
import fakesnow
import pytest
import snowflake.connector
from conftest import Warehouse, fast_client, lead_spec
from test_sync_state import FakeSnowflakeWarehouse

from local_stack.sandbox.salesforce import SandboxHandle
from platform_assets.components.salesforce_syncs import build_sync_asset
from platform_assets.dbt_manifest import DbtModel
from platform_assets.integrations.salesforce.conflicts import ConflictDataError
from platform_assets.integrations.salesforce.resource import SalesforceResource
from platform_assets.integrations.salesforce.sync_engine import SalesforceSyncRun, SyncReport
from platform_assets.integrations.salesforce.sync_spec import SyncConfigError, SyncSpec, load_sync_specs
from platform_assets.warehouse import WarehouseSession

KEY = "sgn_000001"
MERGE = "salesforce_value || ' / ' || warehouse_value"
RULES: dict[str, Any] = {
    "warehouse_wins": "warehouse_wins",
    "salesforce_wins": "salesforce_wins",
    "last_writer_wins": "last_writer_wins",
    "custom": {"policy": "custom", "expression": MERGE},
}
CONFLICT_COLUMNS = (
    "record_key, field, policy, warehouse_value, salesforce_value, last_sent_value, decision, sent_value, "
    "run_id"
)


def conflict_spec(policy: str | None = None, **overrides: Any) -> SyncSpec:
    settings: dict[str, Any] = dict(salesforce_data="raw_salesforce.lead", changed_at_column="changed_at")
    if policy is not None:
        settings["conflict_policy"] = RULES[policy]
    settings.update(overrides)
    return lead_spec(**settings)


def extract(
    org: SandboxHandle, session_of: Callable[[], AbstractContextManager[WarehouseSession]], sobject: str,
    fields: list[str], table: str, stamps: tuple[str, ...] = ("SystemModstamp", "LastModifiedDate"),
    upper: bool = False,
) -> None:  # fmt: skip
    """What the extractor lands: every record's current version appended as text (extracts are
    incremental, so a record appears once per extraction that saw it changed). Unquoted names are
    upper-cased by Snowflake and kept by DuckDB; `upper` writes upper-case names on DuckDB too."""
    columns = ["Id", *stamps, "IsDeleted", *fields]
    rows = list(fast_client(org).query(f"SELECT {', '.join(columns)} FROM {sobject}"))
    names = [f'"{c.upper()}"' if upper else c for c in columns]
    with session_of() as session:
        session.execute("CREATE SCHEMA IF NOT EXISTS raw_salesforce")
        ddl = ", ".join(f"{c} VARCHAR" for c in names)
        session.execute(f"CREATE TABLE IF NOT EXISTS raw_salesforce.{table} ({ddl})")
        placeholders = ", ".join("?" for _ in names)
        session.executemany(
            f"INSERT INTO raw_salesforce.{table} ({', '.join(names)}) VALUES ({placeholders})",
            [[row.get(c) or None for c in columns] for row in rows],
        )


def rep_edits(org: SandboxHandle, sobject: str, record_id: str, **fields: str) -> None:
    """Someone changes a record in Salesforce (a Bulk update through the sandbox's HTTP API)."""
    result = fast_client(org).ingest(sobject, "update", [{"Id": record_id, **fields}])
    assert len(result.successful) == 1, result.failed


def lead(org: SandboxHandle, key: str = KEY) -> dict[str, str]:
    rows = fast_client(org).query(
        f"SELECT Id, FirstName, LastName, Company, Email, Product_Usage_Score__c FROM Lead "
        f"WHERE Signup_Id__c = '{key}'"
    )
    return next(iter(rows))


@pytest.fixture
def leads(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
) -> Callable[..., SyncReport]:
    """Three Leads the platform created (first sync done); returns a runner for the next syncs that
    extracts Lead into raw_salesforce.lead first."""
    warehouse.make_leads(3)
    warehouse.sql("ALTER TABLE activation.act_test_leads ADD COLUMN changed_at TIMESTAMP")
    warehouse.sql("UPDATE activation.act_test_leads SET changed_at = TIMESTAMP '2026-01-01 00:00:00'")

    def run(spec: SyncSpec, extract_first: bool = True) -> SyncReport:
        if extract_first:
            extract(org, warehouse.resource.session, "Lead", FIELDS, "lead")
        return sync(spec)

    return run


FIELDS = [
    "Signup_Id__c",
    "FirstName",
    "LastName",
    "Company",
    "Email",
    "Product_Usage_Score__c",
    "Last_Active_At__c",
]


def model_edit(warehouse: Warehouse, assignments: str, changed_at: str = "now()") -> None:
    warehouse.sql(
        f"UPDATE activation.act_test_leads SET {assignments}, changed_at = {changed_at} "
        f"WHERE signup_id = '{KEY}'"
    )


def conflicts(warehouse: Warehouse) -> list[tuple]:
    return warehouse.sql(
        f"SELECT {CONFLICT_COLUMNS} FROM platform_sync.sync_conflicts ORDER BY run_id, field"
    )


def first_sync(org: SandboxHandle, warehouse: Warehouse, leads, spec: SyncSpec) -> str:
    leads(spec, extract_first=False)
    return warehouse.state()[KEY][1]


# ---------------------------------------------------------------------------- both sides change a field


@pytest.mark.parametrize(
    ("policy", "changed_at", "first_name", "decision", "sent"),
    [
        ("warehouse_wins", "now()", "Model", "warehouse", "Model"),
        ("salesforce_wins", "now()", "Rep", "salesforce", None),
        ("last_writer_wins", "now() + INTERVAL 1 DAY", "Model", "warehouse", "Model"),
        ("last_writer_wins", "TIMESTAMP '2020-01-01 00:00:00'", "Rep", "salesforce", None),
        ("custom", "now()", "Rep / Model", "merged", "Rep / Model"),
    ],
)
def test_both_sides_changed_the_field_the_policy_decides_and_both_values_are_recorded(
    org: SandboxHandle, warehouse: Warehouse, leads, policy, changed_at, first_name, decision, sent
):
    spec = conflict_spec(policy)
    lead_id = first_sync(org, warehouse, leads, spec)
    rep_edits(org, "Lead", lead_id, FirstName="Rep")
    model_edit(warehouse, "FirstName = 'Model'", changed_at)

    report = leads(spec)

    assert lead(org)["FirstName"] == first_name
    assert dict(report.succeeded) == {"changed": 1}
    assert conflicts(warehouse) == [
        (KEY, "FirstName", policy, "Model", "Rep", "First 1", decision, sent, report.run_id)
    ]
    assert dict(report.conflicts) == {decision: 1}
    runs = "SELECT conflicts FROM platform_sync.sync_runs WHERE run_id = ?"
    assert warehouse.sql(runs, [report.run_id]) == [(1,)]
    # Decided once: an unchanged model sends nothing and finds no new conflict.
    again = leads(spec)
    assert sum(again.planned.values()) == 0 and not again.conflicts
    assert lead(org)["FirstName"] == first_name


# ---------------------------------------------------------------------------- only one side changes


@pytest.mark.parametrize("policy", list(RULES))
def test_only_the_warehouse_changed_the_field_every_policy_writes_it_without_a_conflict(
    org: SandboxHandle, warehouse: Warehouse, leads, policy
):
    spec = conflict_spec(policy)
    first_sync(org, warehouse, leads, spec)
    model_edit(warehouse, "FirstName = 'Model'", "TIMESTAMP '2020-01-01 00:00:00'")

    report = leads(spec)

    assert lead(org)["FirstName"] == "Model"
    assert report.succeeded["changed"] == 1
    assert conflicts(warehouse) == [] and not report.conflicts


@pytest.mark.parametrize(
    ("policy", "first_name", "decision"),
    [
        (
            "warehouse_wins",
            "First 1",
            "warehouse",
        ),  # the record is sent again: Salesforce's edit is overwritten
        ("salesforce_wins", "Rep", "salesforce"),
        (
            "last_writer_wins",
            "Rep",
            "salesforce",
        ),  # the warehouse did not change the field: Salesforce wrote last
        ("custom", "Rep / First 1", "merged"),
    ],
)
def test_only_salesforce_changed_the_field_while_the_record_is_sent_again(
    org: SandboxHandle, warehouse: Warehouse, leads, policy, first_name, decision
):
    spec = conflict_spec(policy)
    lead_id = first_sync(org, warehouse, leads, spec)
    rep_edits(org, "Lead", lead_id, FirstName="Rep")
    model_edit(warehouse, "Product_Usage_Score__c = 99.5", "now() + INTERVAL 1 DAY")

    report = leads(spec)

    record = lead(org)
    assert record["FirstName"] == first_name
    assert float(record["Product_Usage_Score__c"]) == 99.5
    assert [(r[1], r[3], r[4], r[6]) for r in conflicts(warehouse)] == [
        ("FirstName", "First 1", "Rep", decision)
    ]
    assert dict(report.conflicts) == {decision: 1}


@pytest.mark.parametrize("policy", list(RULES))
def test_only_salesforce_changed_and_the_model_did_not_nothing_is_sent(
    org: SandboxHandle, warehouse: Warehouse, leads, policy
):
    spec = conflict_spec(policy)
    lead_id = first_sync(org, warehouse, leads, spec)
    rep_edits(org, "Lead", lead_id, FirstName="Rep")

    report = leads(spec)

    assert sum(report.planned.values()) == 0
    assert lead(org)["FirstName"] == "Rep"
    assert conflicts(warehouse) == []


# ---------------------------------------------------------------------------- edges


def test_per_field_policies_override_the_sync_policy(org: SandboxHandle, warehouse: Warehouse, leads):
    spec = conflict_spec(
        "warehouse_wins",
        field_conflict_policies={
            "FirstName": "salesforce_wins",
            "Company": {"policy": "custom", "expression": "coalesce(salesforce_value, warehouse_value)"},
            "Email": "last_writer_wins",
        },
    )
    lead_id = first_sync(org, warehouse, leads, spec)
    rep_edits(
        org, "Lead", lead_id, FirstName="Rep", LastName="Rep", Company="Rep Co", Email="rep@example.com"
    )
    model_edit(
        warehouse,
        "FirstName = 'Model', LastName = 'Model', Company = 'Model Co', Email = 'model@example.com'",
        "now() + INTERVAL 1 DAY",
    )

    leads(spec)

    record = lead(org)
    assert (record["FirstName"], record["LastName"], record["Company"], record["Email"]) == (
        "Rep", "Model", "Rep Co", "model@example.com",
    )  # fmt: skip
    assert {r[1]: (r[2], r[6]) for r in conflicts(warehouse)} == {
        "FirstName": ("salesforce_wins", "salesforce"),
        "LastName": ("warehouse_wins", "warehouse"),
        "Company": ("custom", "salesforce"),  # the expression chose Salesforce's value
        "Email": ("last_writer_wins", "warehouse"),
    }


def test_state_tables_from_before_conflict_policies_gain_their_columns(
    org: SandboxHandle, warehouse: Warehouse, leads
):
    warehouse.sql("CREATE SCHEMA platform_sync")
    for table, columns in {
        "sync_state": "sync_name VARCHAR, record_key VARCHAR, row_hash UBIGINT, salesforce_id VARCHAR, "
        "synced_at TIMESTAMP",
        "sync_pending": "sync_name VARCHAR, run_id VARCHAR, batch_no INTEGER, record_key VARCHAR, "
        "row_hash UBIGINT, change_type VARCHAR, salesforce_id VARCHAR, match_value VARCHAR",
        "sync_outcomes": "sync_name VARCHAR, token VARCHAR, record_key VARCHAR, row_hash UBIGINT, "
        "change_type VARCHAR, salesforce_id VARCHAR, status VARCHAR, error VARCHAR",
    }.items():
        warehouse.sql(f"CREATE TABLE platform_sync.{table} ({columns})")
    spec = conflict_spec("salesforce_wins")
    lead_id = first_sync(org, warehouse, leads, spec)
    rep_edits(org, "Lead", lead_id, FirstName="Rep")
    model_edit(warehouse, "FirstName = 'Model'")

    assert dict(leads(spec).conflicts) == {"salesforce": 1}


def test_a_conflict_still_decided_the_same_way_is_recorded_once(
    org: SandboxHandle, warehouse: Warehouse, leads
):
    spec = conflict_spec("salesforce_wins")
    lead_id = first_sync(org, warehouse, leads, spec)
    rep_edits(org, "Lead", lead_id, FirstName="Rep")
    model_edit(warehouse, "FirstName = 'Model'")
    first = leads(spec)
    model_edit(warehouse, "Product_Usage_Score__c = 7")  # the record goes again, FirstName still disagrees
    repeated = leads(spec)
    model_edit(warehouse, "FirstName = 'Model 2'")
    new = leads(spec)

    assert (dict(first.conflicts), dict(repeated.conflicts), dict(new.conflicts)) == (
        {"salesforce": 1}, {}, {"salesforce": 1},
    )  # fmt: skip
    assert [(r[3], r[4], r[8]) for r in conflicts(warehouse)] == [
        ("Model", "Rep", first.run_id), ("Model 2", "Rep", new.run_id),
    ]  # fmt: skip
    assert lead(org)["FirstName"] == "Rep"
    assert float(lead(org)["Product_Usage_Score__c"]) == 7


def test_an_extract_older_than_the_platforms_last_write_shows_no_conflict(
    org: SandboxHandle, warehouse: Warehouse, leads
):
    spec = conflict_spec("salesforce_wins")
    first_sync(org, warehouse, leads, spec)
    extract(org, warehouse.resource.session, "Lead", FIELDS, "lead")  # sees the first write
    time.sleep(1.1)  # Salesforce stamps whole seconds: the next write must be in a later second
    model_edit(warehouse, "FirstName = 'Model'")
    leads(spec, extract_first=False)  # writes Model; the extract still shows First 1, from before
    model_edit(warehouse, "Product_Usage_Score__c = 5")

    report = leads(spec, extract_first=False)

    assert not report.conflicts and conflicts(warehouse) == []
    assert lead(org)["FirstName"] == "Model"


def test_records_written_before_the_policy_was_declared_get_their_baseline_on_the_next_write(
    org: SandboxHandle, warehouse: Warehouse, leads
):
    lead_id = first_sync(org, warehouse, leads, lead_spec())  # no policy: no sent values kept
    rep_edits(org, "Lead", lead_id, FirstName="Rep")
    model_edit(warehouse, "FirstName = 'Model'")
    spec = conflict_spec("salesforce_wins")

    first = leads(spec)  # no baseline yet: Salesforce's edit cannot be told from an old value
    rep_edits(org, "Lead", lead_id, FirstName="Rep again")
    model_edit(warehouse, "FirstName = 'Model again'")
    second = leads(spec)

    assert not first.conflicts
    assert dict(second.conflicts) == {"salesforce": 1}
    assert lead(org)["FirstName"] == "Rep again"


def test_missing_extract_or_a_failing_expression_stops_the_run_before_anything_is_sent(
    org: SandboxHandle, warehouse: Warehouse, leads
):
    spec = conflict_spec("custom", salesforce_data="raw_salesforce.lead_missing")
    lead_id = first_sync(org, warehouse, leads, spec)
    rep_edits(org, "Lead", lead_id, FirstName="Rep")
    model_edit(warehouse, "FirstName = 'Model'")
    with pytest.raises(ConflictDataError, match=r"key 'salesforce_data'.*lead_missing do not exist"):
        leads(spec)
    broken = conflict_spec(
        policy=None, conflict_policy={"policy": "custom", "expression": "warehouse_value +"}
    )
    with pytest.raises(ConflictDataError, match="custom conflict policy of FirstName: the expression failed"):
        leads(broken)

    assert lead(org)["FirstName"] == "Rep" and warehouse.failures() == {}
    assert conflicts(warehouse) == []  # the evaluation's scratch rows are gone


# ---------------------------------------------------------------------------- the check and metadata


def test_the_sync_asset_reports_conflicts_in_its_metadata_and_a_non_blocking_check(
    org: SandboxHandle, warehouse: Warehouse, leads, local_platform
):
    spec = conflict_spec("salesforce_wins")
    lead_id = first_sync(org, warehouse, leads, spec)
    rep_edits(org, "Lead", lead_id, FirstName="Rep")
    model_edit(warehouse, "FirstName = 'Model'")
    extract(org, warehouse.resource.session, "Lead", FIELDS, "lead")
    resources = {
        "salesforce": SalesforceResource(
            login_url=org.url, client_id=org.client_id, client_secret=org.client_secret, poll_interval=0.02
        ),
        "warehouse": warehouse.resource,
    }
    model = DbtModel("act_test_leads", dg.AssetKey(["activation", "act_test_leads"]))

    result = dg.materialize([build_sync_asset(spec, model, "warehouse")], resources=resources)

    assert result.success
    metadata = result.asset_materializations_for_node("salesforce__test_leads")[0].metadata
    assert metadata["conflicts"].value == 1 and metadata["conflicts_salesforce"].value == 1
    assert metadata["conflict_sample"].value == [
        {"record_key": KEY, "field": "FirstName", "policy": "salesforce_wins", "decision": "salesforce"}
    ]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    check = checks["no_conflicts"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["conflicts"].value == 1
    assert check.metadata["by_field"].value == {"FirstName": 1}
    [sample] = check.metadata["sample"].value
    assert (sample["warehouse_value"], sample["salesforce_value"], sample["decision"]) == (
        "Model",
        "Rep",
        "salesforce",
    )
    assert checks["no_failed_records"].passed


# ---------------------------------------------------------------------------- a shape the sample lacks


def test_contacts_by_user_id_with_upper_case_extracts_and_only_last_modified_date(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    """Contact upsert by User_Id__c (no sample sync writes Contacts), an extract whose columns are
    upper-case and carry LastModifiedDate only, and a custom rule over both timestamps."""
    warehouse.sql("CREATE SCHEMA IF NOT EXISTS activation")
    warehouse.sql(
        "CREATE TABLE activation.act_test_contacts AS SELECT 'u' || i AS user_id, 'u' || i AS USER_ID__C, "
        "'Person ' || i AS LAST_NAME, 'Engineer' AS TITLE, TIMESTAMP '2026-01-01' AS UPDATED "
        "FROM range(2) t(i)"
    )
    spec = SyncSpec(
        name="test_contacts", model="act_test_contacts", object="Contact", mode="upsert",
        external_id_field="User_Id__c", primary_key="user_id",
        mapping={"USER_ID__C": "User_Id__c", "LAST_NAME": "LastName", "TITLE": "Title"},
        salesforce_data="raw_salesforce.contact_extract", changed_at_column="UPDATED",
        conflict_policy={
            "policy": "custom",
            "expression": "CASE WHEN salesforce_changed_at > warehouse_changed_at "
            "THEN upper(salesforce_value) ELSE warehouse_value END",
        },
        source_file="syncs/test_contacts.yaml",
    )  # fmt: skip
    sync(spec)
    contact_id = warehouse.state("test_contacts")["u1"][1]
    rep_edits(org, "Contact", contact_id, Title="Manager")
    warehouse.sql("UPDATE activation.act_test_contacts SET TITLE = 'Director' WHERE user_id = 'u1'")
    extract(org, warehouse.resource.session, "Contact", ["User_Id__c", "LastName", "Title"],
            '"CONTACT_EXTRACT"', stamps=("LastModifiedDate",), upper=True)  # fmt: skip

    report = sync(spec)

    title = next(iter(fast_client(org).query("SELECT Title FROM Contact WHERE User_Id__c = 'u1'")))["Title"]
    assert title == "MANAGER"
    assert dict(report.conflicts) == {"merged": 1}
    assert warehouse.sql("SELECT record_key, field, decision FROM platform_sync.sync_conflicts") == [
        ("u1", "Title", "merged")
    ]


def test_account_updates_by_lookup_with_a_typed_extract(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    """Account update mode (Ids found by Workspace_Id__c), an integer field, last_writer_wins, and an extract
    typed as the DuckDB loader types it (TIMESTAMP stamps, BIGINT numbers, BOOLEAN IsDeleted)."""
    warehouse.sql("CREATE SCHEMA IF NOT EXISTS activation")
    warehouse.sql(
        "CREATE TABLE activation.act_test_accounts AS SELECT "
        "'ws_' || lpad(i::VARCHAR, 6, '0') AS workspace_id, "
        "'ws_' || lpad(i::VARCHAR, 6, '0') AS Workspace_Id__c, i * 10 AS NumberOfEmployees, "
        "'DE' AS BillingCountry, TIMESTAMP '2026-01-01' AS updated_at FROM range(1, 4) t(i)"
    )
    spec = SyncSpec(
        name="test_accounts", model="act_test_accounts", object="Account", mode="update",
        external_id_field="Workspace_Id__c", primary_key="workspace_id",
        mapping={c: c for c in ("Workspace_Id__c", "NumberOfEmployees", "BillingCountry")},
        conflict_policy="last_writer_wins", changed_at_column="updated_at",
        salesforce_data="raw_salesforce.account", source_file="syncs/test_accounts.yaml",
    )  # fmt: skip
    assert sync(spec).succeeded["added"] == 3
    state = warehouse.state("test_accounts")
    rep_edits(org, "Account", state["ws_000001"][1], NumberOfEmployees="999")
    warehouse.sql(
        "UPDATE activation.act_test_accounts SET NumberOfEmployees = 50, updated_at = TIMESTAMP '2020-01-01' "
        "WHERE workspace_id = 'ws_000001'"
    )
    warehouse.sql(
        "UPDATE activation.act_test_accounts SET BillingCountry = 'FR' WHERE workspace_id = 'ws_000002'"
    )
    fields = ["Workspace_Id__c", "NumberOfEmployees", "BillingCountry"]
    extract(org, warehouse.resource.session, "Account", fields, "account_text")
    warehouse.sql(
        "CREATE TABLE raw_salesforce.account AS SELECT Id, "
        "CAST(SystemModstamp AS TIMESTAMP) AS SystemModstamp, "
        "CAST(IsDeleted AS BOOLEAN) AS IsDeleted, Workspace_Id__c, CAST(NumberOfEmployees AS BIGINT) AS "
        "NumberOfEmployees, BillingCountry FROM raw_salesforce.account_text"
    )

    report = sync(spec)

    accounts = {
        row["Workspace_Id__c"]: (row["NumberOfEmployees"], row["BillingCountry"])
        for row in fast_client(org).query(
            "SELECT Workspace_Id__c, NumberOfEmployees, BillingCountry FROM Account"
        )
    }
    assert accounts["ws_000001"] == ("999", "DE") and accounts["ws_000002"] == ("20", "FR")
    assert dict(report.conflicts) == {"salesforce": 1}  # ws_000002's unchanged numbers compare equal
    assert warehouse.sql(
        "SELECT record_key, field, warehouse_value, salesforce_value FROM platform_sync.sync_conflicts"
    ) == [("ws_000001", "NumberOfEmployees", "50", "999")]


# ---------------------------------------------------------------------------- Snowflake (fakesnow)


@pytest.fixture
def snowflake_warehouse() -> Iterator[FakeSnowflakeWarehouse]:
    with fakesnow.patch():
        connection = snowflake.connector.connect(database="platform", schema="public", paramstyle="qmark")
        yield FakeSnowflakeWarehouse(connection)


def test_policies_on_the_snowflake_path(org: SandboxHandle, snowflake_warehouse: FakeSnowflakeWarehouse):
    """The whole run on Snowflake SQL: sent values in state, the extract read by upper-cased names, the
    custom expression evaluated there, the conflicts table written and summarised. s1: both sides changed
    every field; s0: only the model; s2: only Salesforce (row unchanged); s3: Salesforce changed three
    fields while the model changed the fourth."""
    with snowflake_warehouse.session() as session:
        session.execute("CREATE SCHEMA IF NOT EXISTS activation")
        session.execute(
            "CREATE TABLE activation.act_test_leads (signup_id VARCHAR, Signup_Id__c VARCHAR, "
            "FirstName VARCHAR, LastName VARCHAR, Company VARCHAR, Email VARCHAR, changed_at TIMESTAMP)"
        )
        session.executemany(
            "INSERT INTO activation.act_test_leads VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(f"s{i}", f"s{i}", f"First {i}", f"Last {i}", "Acme", f"p{i}@example.com", "2026-01-01 00:00:00")
             for i in range(4)],
        )  # fmt: skip
    mapping = {c: c for c in ("Signup_Id__c", "FirstName", "LastName", "Company", "Email")}
    spec = lead_spec(
        mapping=mapping, salesforce_data="raw_salesforce.lead", changed_at_column="changed_at",
        conflict_policy="warehouse_wins",
        field_conflict_policies={
            "FirstName": "salesforce_wins",
            "Company": {"policy": "custom", "expression": MERGE},
            "Email": "last_writer_wins",
        },
    )  # fmt: skip
    runs = iter(range(10))

    def run() -> SyncReport:
        return SalesforceSyncRun(
            spec=spec, warehouse=snowflake_warehouse, client=fast_client(org), sync_schema="platform_sync",
            model_schema="activation", run_id=f"sf-{next(runs)}",
        ).run()  # fmt: skip

    def model(assignments: str, keys: str) -> None:
        with snowflake_warehouse.session() as session:
            session.execute(f"UPDATE activation.act_test_leads SET {assignments} WHERE signup_id IN ({keys})")

    run()
    with snowflake_warehouse.session() as session:
        ids = dict(session.fetchall("SELECT record_key, salesforce_id FROM platform_sync.sync_state"))
    rep = {"FirstName": "Rep", "LastName": "Rep", "Company": "Rep Co", "Email": "rep@example.com"}
    for key in ("s1", "s2"):
        rep_edits(org, "Lead", ids[key], **rep)
    rep_edits(org, "Lead", ids["s3"], **{f: v for f, v in rep.items() if f != "Email"})
    model(
        "FirstName = 'Model', LastName = 'Model', Company = 'Model Co', Email = 'model@example.com', "
        "changed_at = '2020-01-01 00:00:00'",
        "'s0', 's1'",
    )
    model("Email = 'model@example.com', changed_at = '2030-01-01 00:00:00'", "'s3'")
    extract(org, snowflake_warehouse.session, "Lead", list(mapping), "lead")

    report = run()

    fields = ("FirstName", "LastName", "Company", "Email")
    leads = {
        row["Signup_Id__c"]: tuple(row[f] for f in fields)
        for row in fast_client(org).query(
            "SELECT Signup_Id__c, FirstName, LastName, Company, Email FROM Lead"
        )
    }
    assert leads == {
        "s0": ("Model", "Model", "Model Co", "model@example.com"),
        "s1": ("Rep", "Model", "Rep Co / Model Co", "rep@example.com"),
        "s2": ("Rep", "Rep", "Rep Co", "rep@example.com"),
        "s3": ("Rep", "Last 3", "Rep Co / Acme", "model@example.com"),
    }
    assert dict(report.succeeded) == {"changed": 3}
    assert dict(report.conflicts) == {"salesforce": 3, "warehouse": 2, "merged": 2}
    from platform_assets.integrations.salesforce.sync_state import SyncStore

    summary = SyncStore(snowflake_warehouse, "platform_sync").conflict_summary(
        spec.name, "sf-1", sample_size=10
    )
    assert summary.by_field == {"FirstName": 2, "LastName": 2, "Company": 2, "Email": 1}
    assert summary.by_decision == {"salesforce": 3, "warehouse": 2, "merged": 2}
    assert {(c["record_key"], c["field"]) for c in summary.sample} == {
        ("s1", "FirstName"), ("s1", "LastName"), ("s1", "Company"), ("s1", "Email"),
        ("s3", "FirstName"), ("s3", "LastName"), ("s3", "Company"),
    }  # fmt: skip


# ---------------------------------------------------------------------------- declaration mistakes

SPEC_YAML = """\
name: leads
model: activation.act_leads
object: Lead
mode: {mode}
external_id_field: Signup_Id__c
primary_key: signup_id
mapping:
  Signup_Id__c: Signup_Id__c
  FirstName: FirstName
  LastName: LastName
"""


@pytest.mark.parametrize(
    ("mode", "extra", "key", "says"),
    [
        ("upsert", "conflict_policy: master_wins\nsalesforce_data: raw_salesforce.lead\n",
         "conflict_policy.policy", "'warehouse_wins', 'salesforce_wins', 'last_writer_wins' or 'custom'"),
        ("upsert", "conflict_policy: salesforce_wins\nsalesforce_data: raw_salesforce.lead\n"
         "field_conflict_policies:\n  Title: warehouse_wins\n",
         "field_conflict_policies.Title", "Title is not a mapped field"),
        ("upsert", "conflict_policy: salesforce_wins\nsalesforce_data: raw_salesforce.lead\n"
         "field_conflict_policies:\n  Signup_Id__c: warehouse_wins\n",
         "field_conflict_policies.Signup_Id__c", "not a mapped field a conflict can touch"),
        ("upsert", "conflict_policy: custom\nsalesforce_data: raw_salesforce.lead\n",
         "conflict_policy.expression", "policy custom needs an expression"),
        ("upsert", "conflict_policy: {policy: custom, expression: \"upper('x')\"}\n"
         "salesforce_data: raw_salesforce.lead\n",
         "conflict_policy.expression", "reads neither warehouse_value nor salesforce_value"),
        ("upsert", "conflict_policy: {policy: custom, expression: \"CASE WHEN warehouse_changed_at > "
         "salesforce_changed_at THEN warehouse_value ELSE salesforce_value END\"}\n"
         "salesforce_data: raw_salesforce.lead\n",
         "changed_at_column", "the expression reads warehouse_changed_at"),
        ("upsert", "conflict_policy: {policy: salesforce_wins, expression: warehouse_value}\n"
         "salesforce_data: raw_salesforce.lead\n",
         "conflict_policy.expression", "only policy custom takes an expression"),
        ("upsert", "conflict_policy: last_writer_wins\nsalesforce_data: raw_salesforce.lead\n",
         "changed_at_column", "last_writer_wins needs the row's change time"),
        ("upsert", "conflict_policy: salesforce_wins\n", "salesforce_data", "needs the extracted records"),
        ("upsert", "field_conflict_policies:\n  FirstName: salesforce_wins\nsalesforce_data: lead\n",
         "salesforce_data", "is not `schema.table`"),
        ("insert", "conflict_policy: warehouse_wins\nsalesforce_data: raw_salesforce.lead\n",
         "conflict_policy", "mode insert never writes a record twice"),
        ("upsert", "changed_at_column: updated_at\n", "changed_at_column", "only used with conflict_policy"),
    ],
)  # fmt: skip
def test_conflict_declaration_mistakes_fail_at_load_naming_file_and_key(
    tmp_path: Path, mode: str, extra: str, key: str, says: str
):
    text = SPEC_YAML.format(mode=mode) + extra
    if mode == "insert":
        text = text.replace("external_id_field: Signup_Id__c\n", "")
    path = tmp_path / "leads.yaml"
    path.write_text(text)

    with pytest.raises(SyncConfigError) as error:
        load_sync_specs(tmp_path)

    message = str(error.value)
    assert f"{path}: key '{key}'" in message and says in message, message
    assert "Fix:" in message


def test_a_declared_policy_loads_with_per_field_rules(tmp_path: Path):
    (tmp_path / "leads.yaml").write_text(
        SPEC_YAML.format(mode="upsert") + "conflict_policy: last_writer_wins\nchanged_at_column: updated_at\n"
        "salesforce_data: raw_salesforce.lead\nfield_conflict_policies:\n  firstname: salesforce_wins\n"
    )

    [spec] = load_sync_specs(tmp_path)

    assert {f: r.policy for f, r in spec.conflict_rules().items()} == {
        "FirstName": "salesforce_wins",  # field names compare case-insensitively, as Salesforce's do
        "LastName": "last_writer_wins",
    }
