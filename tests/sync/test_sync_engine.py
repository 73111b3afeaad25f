"""Sync runs over real HTTP against the Salesforce sandbox, with state in a temp DuckDB warehouse."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MANAGER_ID, Warehouse, fast_client, lead_spec

from local_stack.sandbox.salesforce import SandboxHandle
from platform_assets import dbt_manifest
from platform_assets.integrations.salesforce.client import (
    SalesforceClient,
    SalesforceCredentials,
    SalesforceUnavailable,
)
from platform_assets.integrations.salesforce.sync_engine import SyncMappingError, SyncReport, validate_mapping
from platform_assets.integrations.salesforce.sync_spec import load_sync_specs
from platform_assets.integrations.salesforce.sync_state import SyncStore


def leads_in_org(org: SandboxHandle, client_factory=fast_client) -> dict[str, dict[str, str]]:
    rows = client_factory(org).query("SELECT Id, Signup_Id__c, FirstName, Product_Usage_Score__c FROM Lead")
    return {row["Signup_Id__c"]: row for row in rows}


def test_first_sync_sends_every_row_and_an_unchanged_model_sends_none(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(60)

    first = sync(lead_spec())
    second = sync(lead_spec())

    assert first.planned["added"] == first.succeeded["added"] == 60
    assert len(first.job_ids) == 3  # batch_size 25 -> three Bulk jobs
    assert org.count("Lead") == 60
    assert len(warehouse.state()) == 60
    assert all(salesforce_id.startswith("00Q") for _, salesforce_id in warehouse.state().values())
    assert sum(second.planned.values()) == sum(second.sent.values()) == 0
    assert second.job_ids == []
    assert org.counters().get("ingest_create") == 3


def test_one_changed_row_sends_exactly_one_update(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(30)
    sync(lead_spec())
    warehouse.sql("UPDATE activation.act_test_leads SET FirstName = 'Renamed' WHERE signup_id = 'sgn_000007'")

    report = sync(lead_spec())

    assert dict(report.planned) == {"changed": 1}
    assert dict(report.succeeded) == {"changed": 1}
    assert len(report.job_ids) == 1
    assert leads_in_org(org)["sgn_000007"]["FirstName"] == "Renamed"
    assert org.count("Lead") == 30


def test_a_versioned_model_is_read_from_its_versions_table(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    # dbt builds `model: act_test_leads` with `versions:` as act_test_leads_v2: the plain name is no table.
    warehouse.make_leads(12, table="act_test_leads_v2")

    report = sync(lead_spec(), model_table="act_test_leads_v2")

    assert report.succeeded["added"] == 12
    assert org.count("Lead") == 12


def test_mapping_change_resends_every_row(warehouse: Warehouse, sync: Callable[..., SyncReport]):
    warehouse.make_leads(10)
    sync(lead_spec())
    smaller = {k: v for k, v in lead_spec().mapping.items() if k != "Last_Active_At__c"}

    report = sync(lead_spec(mapping=smaller))

    assert report.planned["changed"] == 10


def test_full_resync_sends_every_row_again(warehouse: Warehouse, sync: Callable[..., SyncReport]):
    warehouse.make_leads(10)
    sync(lead_spec())

    report = sync(lead_spec(), full_resync=True)

    assert report.planned["changed"] == report.succeeded["changed"] == 10


def test_mirror_deletes_records_whose_rows_left_the_model(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(20)
    sync(lead_spec(mode="mirror"))
    warehouse.sql("DELETE FROM activation.act_test_leads WHERE signup_id IN ('sgn_000003', 'sgn_000011')")

    report = sync(lead_spec(mode="mirror"))

    assert dict(report.planned) == {"removed": 2}
    assert dict(report.succeeded) == {"removed": 2}
    assert org.count("Lead") == 18
    assert set(leads_in_org(org)) == {f"sgn_{i:06d}" for i in range(20)} - {"sgn_000003", "sgn_000011"}
    assert "sgn_000003" not in warehouse.state()
    assert sum(sync(lead_spec(mode="mirror")).planned.values()) == 0


def test_upsert_mode_never_deletes_rows_that_left_the_model(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(5)
    sync(lead_spec())
    warehouse.sql("DELETE FROM activation.act_test_leads WHERE signup_id = 'sgn_000001'")

    report = sync(lead_spec())

    assert sum(report.planned.values()) == 0
    assert org.count("Lead") == 5


def test_session_expiry_mid_sync_reauthenticates_and_completes(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport], monkeypatch
):
    warehouse.make_leads(50)
    record_job = SyncStore.record_job

    def record_then_expire(self, *args, **kwargs):
        record_job(self, *args, **kwargs)
        org.expire_sessions()  # the upload right after job creation meets INVALID_SESSION_ID

    monkeypatch.setattr(SyncStore, "record_job", record_then_expire)

    report = sync(lead_spec())

    assert report.succeeded["added"] == 50
    assert org.counters()["token"] >= 3  # the first login plus one per expired session
    assert len(warehouse.state()) == 50


def test_rate_limit_bursts_back_off_and_complete(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(50)
    org.rate_limit(4, retry_after=0, path="jobs/ingest")

    report = sync(lead_spec())

    assert org.sandbox.faults.rate_limited == 0  # all four 429s were served to this run
    assert report.succeeded["added"] == 50
    assert org.count("Lead") == 50
    assert len(warehouse.state()) == 50


def test_failed_records_are_recorded_kept_out_of_state_and_retried_alone(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(40)
    org.fail_records(0.05, error="FIELD_CUSTOM_VALIDATION_EXCEPTION", message="Company is blocked")

    first = sync(lead_spec(batch_size=40))

    assert first.failed["added"] == 2 and first.succeeded["added"] == 38
    failures = warehouse.failures()
    assert len(failures) == 2
    assert all("FIELD_CUSTOM_VALIDATION_EXCEPTION" in error for _, error, _ in failures.values())
    assert set(failures).isdisjoint(warehouse.state())
    assert len(warehouse.state()) == 38

    org.reset_faults()
    retry = sync(lead_spec(batch_size=40))

    assert dict(retry.planned) == {"added": 2}
    assert dict(retry.succeeded) == {"added": 2}
    assert warehouse.failures() == {}
    assert len(warehouse.state()) == 40


def test_a_record_failing_twice_counts_its_attempts(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(20)
    org.fail_records(0.05)
    sync(lead_spec(batch_size=20))
    org.fail_records(1.0)

    retry = sync(lead_spec(batch_size=20))

    assert sum(retry.sent.values()) == 1

    failures = warehouse.failures()
    assert len(failures) == 1
    ((_, _, attempts),) = failures.values()
    assert attempts == 2


def test_unknown_mapped_field_fails_before_sending_naming_sync_field_and_object(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(5)
    warehouse.sql("ALTER TABLE activation.act_test_leads ADD COLUMN shoe_size INTEGER")
    spec = lead_spec(mapping={**lead_spec().mapping, "shoe_size": "Shoe_Size__c"})

    with pytest.raises(SyncMappingError) as error:
        sync(spec)

    message = str(error.value)
    assert "test_leads" in message and "Shoe_Size__c" in message and "Lead" in message
    assert "ingest_create" not in org.counters()
    assert org.count("Lead") == 0


def test_non_updateable_field_fails_before_sending(org: SandboxHandle, warehouse: Warehouse, sync):
    warehouse.make_leads(5)
    spec = lead_spec(mapping={**lead_spec().mapping, "FirstName": "IsConverted"})

    with pytest.raises(SyncMappingError, match=r"IsConverted .* is not updateable on sObject Lead"):
        sync(spec)
    assert "ingest_create" not in org.counters()


def test_unreachable_salesforce_fails_after_bounded_retries_with_state_untouched(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(10)
    sync(lead_spec())
    before = warehouse.state()
    warehouse.sql("UPDATE activation.act_test_leads SET FirstName = 'Changed'")
    nowhere = SalesforceCredentials("http://127.0.0.1:9", org.client_id, org.client_secret)
    dead = SalesforceClient(nowhere, max_attempts=3, backoff_initial=0.01, backoff_max=0.05, timeout=2)

    with pytest.raises(SalesforceUnavailable, match="after 3 attempts"):
        sync(lead_spec(), client=dead)

    assert dead.api_calls == 3
    assert warehouse.state() == before
    (status, error) = warehouse.sql(
        "SELECT status, error FROM platform_sync.sync_runs ORDER BY started_at DESC LIMIT 1"
    )[0]
    assert status == "failed" and "SalesforceUnavailable" in error


def test_update_mode_finds_accounts_by_lookup_field_and_reports_missing_ones(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.sql("CREATE SCHEMA IF NOT EXISTS activation")
    warehouse.sql(
        "CREATE TABLE activation.act_test_arr AS SELECT * FROM (VALUES "
        "('ws_000001', 'ws_000001', 1200.0, 'team'), ('ws_000002', 'ws_000002', 36000.0, 'business'), "
        "('ws_000099', 'ws_000099', 10.0, 'team')) t(workspace_id, Workspace_Id__c, ARR__c, Plan__c)"
    )
    spec = lead_spec(
        name="test_arr",
        model="act_test_arr",
        object="Account",
        mode="update",
        external_id_field="Workspace_Id__c",
        primary_key="workspace_id",
        mapping={"Workspace_Id__c": "Workspace_Id__c", "ARR__c": "ARR__c", "Plan__c": "Plan__c"},
    )

    report = sync(spec)

    assert report.succeeded["added"] == 2 and report.failed["added"] == 1
    accounts = {
        r["Workspace_Id__c"]: r
        for r in fast_client(org).query("SELECT Id, Workspace_Id__c, ARR__c, Plan__c FROM Account")
    }
    assert (
        float(accounts["ws_000002"]["ARR__c"]) == 36000.0 and accounts["ws_000002"]["Plan__c"] == "business"
    )
    assert org.count("Account") == 3  # update never creates
    assert "NOT_FOUND" in warehouse.failures("test_arr")["ws_000099"][1]
    assert warehouse.state("test_arr")["ws_000001"][1] == accounts["ws_000001"]["Id"]

    warehouse.sql("UPDATE activation.act_test_arr SET ARR__c = 2400.0 WHERE workspace_id = 'ws_000001'")
    again = sync(spec)
    assert again.succeeded["changed"] == 1 and again.failed["added"] == 1  # Id from state, no lookup needed


def test_insert_mode_sends_only_new_keys_even_on_full_resync(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(8)
    spec = lead_spec(mode="insert", external_id_field=None)
    sync(spec)
    warehouse.sql("UPDATE activation.act_test_leads SET FirstName = 'Changed'")

    report = sync(spec, full_resync=True)

    assert sum(report.planned.values()) == 0
    assert org.count("Lead") == 8


class Killed(BaseException):
    """Stands in for the process dying: not an Exception, so nothing on the way up handles it."""


def test_run_killed_after_salesforce_processed_the_jobs_is_recovered_without_duplicates(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    # Insert mode is where a lost result would duplicate records: the next run must not insert again.
    warehouse.make_leads(30)
    mapping = {column: field for column, field in lead_spec().mapping.items() if field != "Signup_Id__c"}
    spec = lead_spec(mode="insert", external_id_field=None, batch_size=10, mapping=mapping)
    # Inserts are matched on every value sent: two identical rows must still get one record each.
    warehouse.sql(
        "UPDATE activation.act_test_leads SET FirstName = 'Twin', LastName = 'Twin', Email = NULL, "
        "Company = 'Twin', Product_Usage_Score__c = 1, Last_Active_At__c = NULL "
        "WHERE signup_id IN ('sgn_000001', 'sgn_000002')"
    )
    client = fast_client(org)
    ingest = client.ingest

    def ingest_then_die(*args, **kwargs):
        ingest(*args, **kwargs)
        raise Killed  # Salesforce created all 30 records; the run never stored a result

    client.ingest = ingest_then_die
    with pytest.raises(Killed):
        sync(spec, client=client)
    assert org.count("Lead") == 30
    assert warehouse.state() == {}

    report = sync(spec)

    assert report.recovered == 30
    assert sum(report.planned.values()) == 0
    assert org.count("Lead") == 30
    state_ids = [salesforce_id for _, salesforce_id in warehouse.state().values()]
    org_ids = {row["Id"] for row in fast_client(org).query("SELECT Id FROM Lead")}
    assert len(state_ids) == 30 and set(state_ids) == org_ids


def test_job_left_open_by_a_crash_before_upload_is_aborted_and_its_records_sent_again(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport], monkeypatch
):
    warehouse.make_leads(5)
    record_job = SyncStore.record_job

    def record_then_die(self, *args, **kwargs):
        record_job(self, *args, **kwargs)
        raise Killed

    monkeypatch.setattr(SyncStore, "record_job", record_then_die)
    with pytest.raises(Killed):
        sync(lead_spec(mode="insert", external_id_field=None))
    monkeypatch.setattr(SyncStore, "record_job", record_job)
    (left_open,) = [job for job in org.sandbox.bulk.ingest_jobs() if job["state"] == "Open"]

    report = sync(lead_spec(mode="insert", external_id_field=None))

    assert org.sandbox.bulk.ingest_job(left_open["id"])["state"] == "Aborted"
    assert report.recovered == 0 and report.succeeded["added"] == 5
    assert org.count("Lead") == 5
    assert len(warehouse.state()) == 5


def test_every_run_writes_an_audit_row(warehouse: Warehouse, sync: Callable[..., SyncReport]):
    warehouse.make_leads(12)
    report = sync(lead_spec())

    (row,) = warehouse.sql(
        "SELECT sync_name, sobject, status, planned_added, succeeded_added, job_ids, api_calls "
        "FROM platform_sync.sync_runs"
    )
    assert row == ("test_leads", "Lead", "succeeded", 12, 12, ",".join(report.job_ids), report.api_calls)


def test_a_run_leaves_the_warehouse_checkpointed(warehouse: Warehouse, sync: Callable[..., SyncReport]):
    """Sessions inside a run skip DuckDB's checkpoint on close; the run must still end with none pending,
    so target-duckdb's older DuckDB never meets this version's write-ahead log."""
    warehouse.make_leads(8)
    sync(lead_spec())

    wal = Path(f"{warehouse.path}.wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_api_usage_comes_from_response_headers_without_a_limits_call(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(5)
    report = sync(lead_spec())

    assert report.api_usage["Max"] > report.api_usage["Remaining"] > 0
    assert "limits" not in org.counters()


KILLABLE_SYNC = """
import json, sys
from platform_assets.integrations.salesforce.client import SalesforceClient, SalesforceCredentials
from platform_assets.integrations.salesforce.sync_engine import SalesforceSyncRun
from platform_assets.integrations.salesforce.sync_spec import SyncSpec
from platform_assets.warehouse import DuckDBWarehouse

args = json.loads(sys.argv[1])
client = SalesforceClient(SalesforceCredentials(args["url"], args["id"], args["secret"]), poll_interval=0.05)
SalesforceSyncRun(SyncSpec(**args["spec"]), DuckDBWarehouse(path=args["db"]), client, "platform_sync",
        "activation", run_id="killed-run").run()
"""


@pytest.mark.integration
def test_sync_process_killed_while_salesforce_works_is_recovered_without_duplicates(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    warehouse.make_leads(15)
    spec = lead_spec(mode="insert", external_id_field=None, batch_size=100)
    org.slow_jobs(2.0)  # the Bulk job stays InProgress while the process is killed
    arguments = {
        "url": org.url,
        "id": org.client_id,
        "secret": org.client_secret,
        "db": str(warehouse.path),
        "spec": spec.model_dump(exclude={"source_file"}),
    }
    process = subprocess.Popen([sys.executable, "-c", KILLABLE_SYNC, json.dumps(arguments)])
    try:
        deadline = time.monotonic() + 60
        while org.counters().get("ingest_state", 0) < 1:  # UploadComplete sent: the job is Salesforce's now
            assert process.poll() is None, "the sync process ended before it could be killed"
            assert time.monotonic() < deadline, "the sync process never uploaded its job"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    org.reset_faults()
    assert warehouse.state() == {}

    report = sync(spec)

    assert report.recovered == 15
    assert sum(report.sent.values()) == 0
    assert org.count("Lead") == 15
    assert len(warehouse.state()) == 15


REPO_SYNCS = Path(__file__).resolve().parents[2] / "platform_assets/defs/activation/salesforce/syncs"


def test_repo_sync_mappings_fit_the_org_schema(org: SandboxHandle):
    client = fast_client(org)
    specs = load_sync_specs(REPO_SYNCS, dbt_manifest.read())
    for spec in specs:
        validate_mapping(spec, client.describe(spec.object))  # raises naming the field if one does not fit
    assert {spec.object for spec in specs} == {"Lead", "Opportunity", "Task", "Account"}


def test_sales_scenario_syncs_create_leads_opportunities_tasks_and_update_arr(
    org: SandboxHandle, warehouse: Warehouse, sync: Callable[..., SyncReport]
):
    accounts = {
        r["Workspace_Id__c"]: r["Id"]
        for r in fast_client(org).query("SELECT Id, Workspace_Id__c FROM Account")
    }
    warehouse.sql("CREATE SCHEMA IF NOT EXISTS activation")
    warehouse.sql(
        "CREATE TABLE activation.act_salesforce_leads AS SELECT 'sgn_000001' AS signup_id, "
        "'sgn_000001' AS Signup_Id__c, 'Ada' AS FirstName, 'Lovelace' AS LastName, 'Analytical' AS Company, "
        "'ada@example.com' AS Email, 'CTO' AS Title, 'Web' AS LeadSource, 'ws_000042' AS Workspace_Id__c, "
        "87.5::DECIMAL(9, 2) AS Product_Usage_Score__c, 4::BIGINT AS Active_Users__c, "
        "TIMESTAMPTZ '2026-03-01 12:30:00+00' AS Last_Active_At__c"
    )
    warehouse.sql(
        "CREATE TABLE activation.act_salesforce_opportunities AS SELECT 'ws_000001' AS workspace_id, "
        "'ws_000001' AS Workspace_Id__c, 'Acme 1 - Renewal' AS Name, ? AS AccountId, "
        "'Qualification' AS StageName, DATE '2026-12-01' AS CloseDate, 12000.00::DECIMAL(18, 2) AS Amount, "
        "'Existing Customer - Renewal' AS Type, ? AS OwnerId",
        [accounts["ws_000001"], MANAGER_ID],
    )
    warehouse.sql(
        "CREATE TABLE activation.act_salesforce_tasks AS SELECT 'invoice_past_due:inv_1' AS task_key, "
        "'invoice_past_due:inv_1' AS Platform_Key__c, 'Invoice inv_1 is past due' AS Subject, "
        "? AS WhatId, ? AS OwnerId, DATE '2026-03-03' AS ActivityDate, 'Not Started' AS Status, "
        "'High' AS Priority, 'Invoice inv_1 of 120.00 USD is 10 days past due.' AS Description",
        [accounts["ws_000002"], MANAGER_ID],
    )
    warehouse.sql(
        "CREATE TABLE activation.act_salesforce_account_arr AS SELECT 'ws_000003' AS workspace_id, "
        "'ws_000003' AS Workspace_Id__c, 48000.00::DECIMAL(18, 2) AS ARR__c, 'enterprise' AS Plan__c"
    )

    sales_syncs = [spec for spec in load_sync_specs(REPO_SYNCS, dbt_manifest.read()) if spec.org == "sales"]
    reports = {spec.name: sync(spec) for spec in sales_syncs}  # the sales org's (support's: test_orgs.py)

    assert {name: dict(r.succeeded) for name, r in reports.items()} == {
        name: {"added": 1} for name in ("leads", "opportunities", "tasks", "account_arr")
    }
    client = fast_client(org)
    (lead,) = client.query("SELECT Product_Usage_Score__c, Last_Active_At__c FROM Lead")
    assert float(lead["Product_Usage_Score__c"]) == 87.5 and lead["Last_Active_At__c"].startswith(
        "2026-03-01T12:30"
    )
    (opportunity,) = client.query("SELECT AccountId, CloseDate, Amount, OwnerId FROM Opportunity")
    assert opportunity["AccountId"] == accounts["ws_000001"] and opportunity["CloseDate"] == "2026-12-01"
    assert opportunity["OwnerId"] == MANAGER_ID
    (task,) = client.query("SELECT WhatId, OwnerId, Platform_Key__c FROM Task")
    assert (task["WhatId"], task["OwnerId"]) == (accounts["ws_000002"], MANAGER_ID)
    (account,) = client.query("SELECT ARR__c, Plan__c FROM Account WHERE Workspace_Id__c = 'ws_000003'")
    assert float(account["ARR__c"]) == 48000.0 and account["Plan__c"] == "enterprise"
    assert all(sum(sync(spec).planned.values()) == 0 for spec in sales_syncs)
