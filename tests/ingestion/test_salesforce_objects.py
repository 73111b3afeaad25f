"""Any Salesforce object as a stream asset: Case and a custom object through Dagster, the real meltano CLI,
tap-salesforce-bulk (fields and types from the sandbox's describe at run time) and target-duckdb; a field
added in the org arrives as a new raw column on the next extraction of a `fields: "*"` stream, with no code or
config change, while a stream with a declared field list (account) keeps its columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from local_stack.sandbox.salesforce import SandboxHandle, start_sandbox
from local_stack.sandbox.salesforce.schema import forget_added_fields
from platform_assets import environment
from platform_assets.components.meltano import CHECK_NAME, ingestion_definitions
from platform_assets.integrations.salesforce.client import SalesforceClient, SalesforceCredentials
from platform_assets.resources import warehouse_resource
from platform_assets.warehouse import connect_duckdb

pytestmark = pytest.mark.integration
SOURCES = environment.PROJECT_ROOT / "platform_assets" / "defs" / "ingestion" / "sources.yaml"
CASES = dg.AssetKey(["raw", "salesforce", "cases"])
CUSTOM = dg.AssetKey(["raw", "salesforce", "subscription__c"])
ACCOUNT = dg.AssetKey(["raw", "salesforce", "account"])  # a declared field list (meltano.yml)
ACCOUNT_COLUMNS = {
    *("id", "createddate", "lastmodifieddate", "systemmodstamp", "isdeleted"),
    *("name", "website", "industry", "numberofemployees", "billingcountry", "ownerid"),
    *("workspace_id__c", "arr__c", "plan__c", "_sdc_batched_at", "_sdc_deleted_at", "_sdc_extracted_at"),
}


@pytest.fixture
def org(local_platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxHandle]:
    """A sandbox org on a free port holding one account, two cases and a subscription (custom object)."""
    with start_sandbox(db_path=tmp_path / "org.sqlite", pubsub_port=None) as handle:
        monkeypatch.setenv("SALESFORCE_LOGIN_URL", handle.url)
        handle.seed(
            {
                "Account": [{"Name": "Acme", "Workspace_Id__c": "ws_1"}],
                "Case": [
                    {"Subject": "Cannot log in", "AccountId": "ws_1", "Priority": "High"},
                    {"Subject": "Invoice question", "AccountId": "ws_1", "SuppliedPhone": "+44 20 7946 0000"},
                ],
                "Subscription__c": [
                    {
                        "Name": "Acme Pro",
                        "Account__c": "ws_1",
                        "Workspace_Id__c": "ws_1",
                        "Seats__c": 12,
                        "Discount__c": 15,
                        "Renewal_Date__c": "2027-03-01",
                    }
                ],
            }
        )
        yield handle
        forget_added_fields()


def materialize(keys: list[dg.AssetKey]) -> dg.ExecuteInProcessResult:
    defs = ingestion_definitions(SOURCES, environment.MELTANO_PROJECT_DIR)
    resources = {**(defs.resources or {}), "warehouse": warehouse_resource()}
    return dg.materialize(list(defs.assets or []), selection=keys, resources=resources, raise_on_error=False)


def raw(sql: str) -> list[tuple]:
    connection = connect_duckdb(environment.current().duckdb_path, read_only=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def columns(table: str) -> dict[str, str]:
    rows = raw(
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = 'raw_salesforce' AND table_name = '{table}'"
    )
    return dict(rows)


def test_case_and_a_custom_object_land_as_assets_and_a_field_added_in_salesforce_arrives_as_a_column(
    meltano_installer, org: SandboxHandle
) -> None:
    meltano_installer(
        environment.MELTANO_PROJECT_DIR, (("extractor", "tap-salesforce-bulk"), ("loader", "target-duckdb"))
    )
    first = materialize([CASES, CUSTOM, ACCOUNT])
    assert first.success
    checks = {
        e.asset_key: e.passed for e in first.get_asset_check_evaluations() if e.check_name == CHECK_NAME
    }
    assert checks == {CASES: True, CUSTOM: True, ACCOUNT: True}
    assert set(columns("account")) == ACCOUNT_COLUMNS
    assert raw("SELECT subject, priority, suppliedphone FROM raw_salesforce.cases ORDER BY subject") == [
        ("Cannot log in", "High", None),
        ("Invoice question", "Medium", "+44 20 7946 0000"),
    ]
    assert raw("SELECT name, seats__c, discount__c FROM raw_salesforce.subscription__c") == [
        ("Acme Pro", 12, 15)
    ]
    typed = columns("subscription__c")
    # Types from the describe: percent -> number -> DOUBLE; target-duckdb 0.8.0 keeps dates as text.
    assert (typed["discount__c"], typed["auto_renew__c"], typed["renewal_date__c"]) == (
        "DOUBLE",
        "BOOLEAN",
        "VARCHAR",
    )
    assert "severity__c" not in columns("cases")

    # An admin adds fields in the org, and people fill them in on one case and the subscription.
    org.add_field("Case", "Severity__c", "picklist")
    org.add_field("Subscription__c", "Health_Score__c", "percent")
    org.add_field("Account", "Tier__c", "picklist")
    client = SalesforceClient(
        SalesforceCredentials(login_url=org.url, client_id=org.client_id, client_secret=org.client_secret),
        poll_interval=0.02,
    )
    [case_id] = [r["Id"] for r in client.query("SELECT Id FROM Case WHERE Subject = 'Cannot log in'")]
    client.ingest("Case", "update", [{"Id": case_id, "Severity__c": "Sev1"}])
    client.ingest(
        "Subscription__c",
        "upsert",
        [{"Workspace_Id__c": "ws_1", "Health_Score__c": 87.5}],
        external_id_field="Workspace_Id__c",
    )

    client.ingest(
        "Account", "update", [{"Id": raw("SELECT id FROM raw_salesforce.account")[0][0], "Tier__c": "A"}]
    )
    second = materialize([CASES, CUSTOM, ACCOUNT])
    assert second.success
    extracted = {
        e.asset_key: e.materialization.metadata["rows_extracted"].value
        for e in second.get_asset_materialization_events()
    }
    assert extracted == {
        CASES: 1,
        CUSTOM: 1,
        ACCOUNT: 1,
    }  # incremental on SystemModstamp: only the changed records
    assert columns("cases")["severity__c"] == "VARCHAR"
    assert columns("subscription__c")["health_score__c"] == "DOUBLE"
    assert raw("SELECT subject, severity__c FROM raw_salesforce.cases ORDER BY subject") == [
        ("Cannot log in", "Sev1"),
        ("Invoice question", None),
    ]
    assert raw("SELECT health_score__c FROM raw_salesforce.subscription__c") == [(87.5,)]
    # A declared field list takes only its fields: the new Account field waits until it is listed.
    assert set(columns("account")) == ACCOUNT_COLUMNS
