"""Seed 000's account-manager flow end to end: the sample company's models built with real dbt assign the
new renewal Opportunity an account manager; the declared opportunities and tasks syncs send it to a
sandbox org, where the Opportunity and its follow-up Task belong to that manager (a real User)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.sandbox.salesforce import SandboxHandle, start_sandbox
from local_stack.sandbox.salesforce.schema import normalize_id
from platform_assets import dbt_manifest, environment
from platform_assets.integrations.salesforce.client import SalesforceClient, SalesforceCredentials
from platform_assets.integrations.salesforce.sync_engine import SalesforceSyncRun
from platform_assets.integrations.salesforce.sync_spec import load_sync_specs
from platform_assets.warehouse import DuckDBWarehouse

SYNCS = environment.PROJECT_ROOT / "platform_assets" / "defs" / "activation" / "salesforce" / "syncs"
# The Users and Accounts of the conftest's raw Salesforce tables, with the same Ids.
ALICE, BOB, CARL = "005000000000001", "005000000000002", "005000000000003"
ORG = {
    "User": [
        {
            "Id": ALICE,
            "Username": "alice@corp",
            "LastName": "Manager",
            "Email": "alice@corp.example",
            "Department": "Account Management",
            "Territory__c": "AMER",
        },
        {
            "Id": BOB,
            "Username": "bob@corp",
            "LastName": "Second",
            "Email": "bob@corp.example",
            "Department": "Account Management",
            "Territory__c": "AMER",
        },
        {
            "Id": CARL,
            "Username": "carl@corp",
            "LastName": "Gone",
            "Email": "carl@corp.example",
            "IsActive": False,
            "Department": "Account Management",
            "Territory__c": "AMER",
        },
    ],
    "Account": [
        {"Id": "001000000000001", "Name": "Acme", "Workspace_Id__c": "ws_000001", "OwnerId": ALICE},
        {"Id": "001000000000003", "Name": "Gamma", "Workspace_Id__c": "ws_000003", "OwnerId": ALICE},
    ],
}


@pytest.fixture
def org(tmp_path: Path) -> Iterator[SandboxHandle]:
    with start_sandbox(db_path=tmp_path / "org.sqlite", pubsub_port=None) as handle:
        report = handle.seed(ORG)
        assert all(not outcome["failed"] for outcome in report.values()), report
        yield handle


def client_for(handle: SandboxHandle) -> SalesforceClient:
    credentials = SalesforceCredentials(handle.url, handle.client_id, handle.client_secret)
    return SalesforceClient(credentials, poll_interval=0.02, timeout=30.0)


@pytest.mark.integration
def test_a_new_opportunity_and_its_follow_up_task_go_to_the_assigned_account_manager(
    warehouse: Path, dbt_project_copy: Path, org: SandboxHandle
):
    manifest = dbt_manifest.read(dbt_project_copy / "target" / "manifest.json")
    specs = {spec.name: spec for spec in load_sync_specs(SYNCS, manifest)}
    assert specs["opportunities"].mapping["OwnerId"] == "OwnerId"
    client = client_for(org)
    for name in ("opportunities", "tasks"):
        report = SalesforceSyncRun(
            spec=specs[name],
            warehouse=DuckDBWarehouse(path=str(warehouse)),
            client=client,
            sync_schema="platform_sync_owner_flow",
            model_schema="activation",
            run_id=f"owner-flow-{name}",
        ).run()
        assert sum(report.failed.values()) == 0, report.failure_sample

    alice = normalize_id(ALICE)  # the 18-character form Salesforce returns
    (opportunity,) = client.query(
        "SELECT Id, OwnerId, AccountId FROM Opportunity WHERE Workspace_Id__c = 'ws_000001'"
    )
    assert opportunity["OwnerId"] == alice
    (follow_up,) = client.query(
        "SELECT OwnerId, WhatId FROM Task WHERE Platform_Key__c = 'renewal_follow_up:ws_000001'"
    )
    assert follow_up == {"OwnerId": alice, "WhatId": opportunity["AccountId"]}
