"""The sample company's declared workflows (platform_assets/defs/workflows/declared/), run for real.

The warehouse gets just the relations they read (campaigns, their attribution, the Salesforce and
Hightouch models of the campaign syncs) instead of a full Meltano + dbt build. The Salesforce and
Hightouch sandboxes run on free loopback ports. Campaign c2's name is longer than Salesforce allows, so
Salesforce rejects its Campaign until the name is fixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from local_stack.sandbox.hightouch import WORKFLOW_SYNCS_DIR, HightouchSandbox
from local_stack.sandbox.hightouch import start_sandbox as start_hightouch
from local_stack.sandbox.salesforce import SandboxHandle
from local_stack.sandbox.salesforce import start_sandbox as start_salesforce
from platform_assets.automation.alerts import AlertsResource
from platform_assets.environment import PROJECT_ROOT, PlatformEnvironment
from platform_assets.integrations.hightouch.resource import HightouchResource
from platform_assets.integrations.salesforce.resource import SalesforceResource
from platform_assets.warehouse import DuckDBWarehouse
from platform_assets.workflows import build
from platform_assets.workflows.spec import load_workflows
from platform_assets.workflows.syncs import load_workflow_syncs

from .conftest import Receiver, sql

DECLARED = PROJECT_ROOT / "platform_assets" / "defs" / "workflows" / "declared"
SYNCS = PROJECT_ROOT / "platform_assets" / "defs" / "workflows" / "syncs"
NOTIFICATIONS = "campaign-notifications-braze"
TOO_LONG = "x" * 81  # Campaign.Name takes 80 characters


@pytest.fixture
def org(tmp_path: Path) -> Iterator[SandboxHandle]:
    with start_salesforce(db_path=tmp_path / "org.sqlite") as handle:
        handle.seed(
            {
                "Lead": [
                    {"LastName": f"Lead {i}", "Company": "Acme", "Email": f"lead{i}@example.com"}
                    for i in range(1, 4)
                ],
                "Contact": [{"LastName": "Customer", "Email": "customer@example.com"}],
            }
        )
        yield handle


def _people(org: SandboxHandle) -> dict[str, str]:
    """Email -> Salesforce Id of the seeded Leads and Contact."""
    rows = org.sandbox.org.conn.execute(
        'SELECT "Email", "Id" FROM "sobject_Lead" UNION ALL SELECT "Email", "Id" FROM "sobject_Contact"'
    ).fetchall()
    return dict(rows)


@pytest.fixture
def campaigns(warehouse: DuckDBWarehouse, org: SandboxHandle) -> DuckDBWarehouse:
    ids = _people(org)
    members = [  # (campaign, email, lead?)
        ("c1", "lead1@example.com", True),
        ("c1", "lead2@example.com", True),
        ("c1", "customer@example.com", False),
        ("c2", "lead3@example.com", True),
        ("c3", "lead1@example.com", True),
    ]
    member_rows = ", ".join(
        f"('{c}:{ids[e]}', '{c}', '{c}', {repr(ids[e]) if lead else 'null'}, "
        f"{'null' if lead else repr(ids[e])}, '{e}')"
        for c, e, lead in members
    )
    sql(
        warehouse,
        "create schema staging",
        "create schema marketing",
        "create schema activation",
        "create table staging.stg_landing__campaigns as select * from (values "
        "('c1', current_date, current_date + 30), ('c2', current_date, current_date + 30), "
        "('c3', current_date + 1, current_date + 30), ('c4', current_date - 40, current_date - 1)) "
        "as t(campaign_id, started_on, ended_on)",
        "create table marketing.mkt_campaign_attribution as select * from (values "
        "('c1', '12', 300, 10.0, 5000), ('c2', '3', 10, 1.0, 20), ('c3', '0', 0, 0.0, 0), "
        "('c4', '7', 70, 99.5, 1000)) as t(campaign_id, signups, clicks, spend, impressions)",
        "create table activation.act_salesforce_campaigns as select campaign_id, campaign_id as "
        "Campaign_Id__c, name as Name, 'Email' as Type, 'In Progress' as Status, current_date as StartDate, "
        "current_date + 30 as EndDate, 1000.0 as BudgetedCost, true as IsActive from (values "
        f"('c1', 'Launch'), ('c2', '{TOO_LONG}'), ('c3', 'Tomorrow')) as t(campaign_id, name)",
        "create table activation.act_salesforce_campaign_members as select member_key, campaign_id, "
        "member_key as Platform_Key__c, campaign_id as campaign_ref, LeadId, ContactId, 'Sent' as Status, "
        f"email from (values {member_rows}) as t(member_key, campaign_id, c, LeadId, ContactId, email)",
        # Who to notify of the campaigns running today (c3 starts tomorrow).
        "create table marketing.mkt_audience_campaign_notifications as select campaign_id || ':' || email "
        "as notification_key, campaign_id, email from activation.act_salesforce_campaign_members "
        "where campaign_id <> 'c3'",
    )
    return warehouse


@pytest.fixture
def hightouch(local_platform: PlatformEnvironment, campaigns: DuckDBWarehouse) -> Iterator[HightouchSandbox]:
    running = start_hightouch(
        state_db=local_platform.sandbox_dir / "hightouch.sqlite3",
        warehouse=local_platform.duckdb_path,
        syncs_dir=WORKFLOW_SYNCS_DIR,
        step_seconds=0.01,
    )
    yield running
    running.stop()


@pytest.fixture
def defs(
    instance: dg.DagsterInstance,  # first: loading definitions reads the live instance's state storage
    campaigns: DuckDBWarehouse,
    org: SandboxHandle,
    hightouch: HightouchSandbox,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> dg.Definitions:
    monkeypatch.setenv("WORKFLOW_TEST_WEBHOOK", f"{receiver.url}/hook")
    resources = {
        "warehouse": campaigns,
        "alerts": AlertsResource(channels=[{"type": "slack_webhook", "url_env": "WORKFLOW_TEST_WEBHOOK"}]),
        "salesforce": SalesforceResource(
            login_url=org.url,
            client_id=org.client_id,
            client_secret=org.client_secret,
            poll_interval=0.02,
            backoff_initial=0.01,
        ),
        "hightouch": HightouchResource(
            api_key=hightouch.api_key, base_url=hightouch.api_base_url, poll_interval_seconds=0.05
        ),
    }
    syncs = load_workflow_syncs(SYNCS)
    workflows = [build.build_workflow_defs(workflow, syncs=syncs) for workflow in load_workflows(DECLARED)]
    defs = dg.Definitions.merge(*workflows, dg.Definitions(resources=resources))
    dg.Definitions.validate_loadable(defs)  # as a code location loads them: op names unique across workflows
    return defs


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, workflow: str) -> list[dg.RunRequest]:
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"warehouse": defs.resources["warehouse"]}
    )
    result = defs.resolve_sensor_def(f"workflow_{workflow}_trigger")(context)
    return [] if isinstance(result, dg.SkipReason) else list(result)


def _launch(defs: dg.Definitions, instance: dg.DagsterInstance, workflow: str, request: dg.RunRequest):
    return defs.resolve_job_def(f"workflow_{workflow}").execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=instance, raise_on_error=False
    )


def _salesforce(org: SandboxHandle, query: str) -> list[tuple]:
    return org.sandbox.org.conn.execute(query).fetchall()


def _campaign_members(org: SandboxHandle) -> list[tuple]:
    """(campaign id in the platform, Lead or Contact Id, Platform_Key__c) of every CampaignMember."""
    return _salesforce(
        org,
        'SELECT c."Campaign_Id__c", coalesce(m."LeadId", m."ContactId"), m."Platform_Key__c" '
        'FROM "sobject_CampaignMember" m JOIN "sobject_Campaign" c ON c."Id" = m."CampaignId" ORDER BY 3',
    )


def test_campaigns_starting_today_are_published_to_salesforce_and_hightouch_one_run_each(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    campaigns: DuckDBWarehouse,
    org: SandboxHandle,
    hightouch: HightouchSandbox,
    receiver: Receiver,
) -> None:
    requests = _tick(defs, instance, "publish_campaigns")
    assert [r.tags[build.TAG_KEY] for r in requests] == ["c1", "c2"]  # c3 starts tomorrow
    assert [r.tags["workflow/var.campaign_id"] for r in requests] == ["c1", "c2"]
    results = {r.tags[build.TAG_KEY]: _launch(defs, instance, "publish_campaigns", r) for r in requests}
    assert results["c1"].success and not results["c2"].success

    # c1: its Campaign and its three members (two Leads, one Contact) are in Salesforce.
    assert _salesforce(org, 'SELECT "Campaign_Id__c", "Name" FROM "sobject_Campaign"') == [("c1", "Launch")]
    ids = _people(org)
    expected_c1 = [
        ("c1", ids[email], f"c1:{ids[email]}")
        for email in ("lead1@example.com", "lead2@example.com", "customer@example.com")
    ]
    assert _campaign_members(org) == sorted(expected_c1, key=lambda row: row[2])
    # c2: Salesforce rejected its Campaign; the record is kept to be sent again, its members were not sent.
    assert sql(
        campaigns,
        "select sync_name, record_key from platform_sync.sync_failures order by 1, 2",
    ) == [("campaigns", "c2")]
    c2 = instance.get_run_by_id(results["c2"].run_id)
    assert c2 is not None
    assert (c2.tags["workflow/step.salesforce_campaign"], c2.tags["workflow/step.salesforce_members"]) == (
        "failed",
        "skipped",
    )
    assert c2.tags["workflow/step.mark_failed"] == c2.tags["workflow/step.record_outcome"] == "succeeded"
    (alert,) = [body["text"] for path, body in receiver.received if path == "/hook"]
    assert "Campaign c2 was not published" in alert and "STRING_TOO_LONG" in alert
    # The notification audience went to Hightouch once, from c1's run.
    (run,) = hightouch.runs(NOTIFICATIONS)
    assert run["status"] == "success"
    assert sorted(hightouch.destination_records(NOTIFICATIONS)) == sorted(
        f"{c}:{e}"
        for c, e in [
            ("c1", "lead1@example.com"),
            ("c1", "lead2@example.com"),
            ("c1", "customer@example.com"),
            ("c2", "lead3@example.com"),
        ]
    )
    assert sql(campaigns, "select campaign_id, status from workflows.campaign_publications order by 1") == [
        ("c1", "published"),
        ("c2", "failed"),
    ]
    assert sql(campaigns, "select campaign_id, status from workflows.campaign_outcomes order by 1") == [
        ("c1", "published"),
        ("c2", "failed"),
    ]

    # The name is fixed; the next tick leaves c1 alone and retries c2, which now publishes.
    sql(
        campaigns,
        "update activation.act_salesforce_campaigns set Name = 'Second launch' where campaign_id = 'c2'",
    )
    (retry,) = _tick(defs, instance, "publish_campaigns")
    assert (retry.tags[build.TAG_KEY], retry.tags[build.TAG_ATTEMPT]) == ("c2", "1")
    assert _launch(defs, instance, "publish_campaigns", retry).success
    assert _salesforce(org, 'SELECT "Campaign_Id__c", "Name" FROM "sobject_Campaign" ORDER BY 1') == [
        ("c1", "Launch"),
        ("c2", "Second launch"),
    ]
    expected_c2 = ("c2", ids["lead3@example.com"], f"c2:{ids['lead3@example.com']}")
    assert _campaign_members(org) == sorted([*expected_c1, expected_c2], key=lambda row: row[2])
    assert sql(campaigns, "select count(*) from platform_sync.sync_failures") == [(0,)]
    assert _tick(defs, instance, "publish_campaigns") == []

    # The launchpad: run config naming another campaign publishes that one (c3 starts tomorrow).
    hand = dg.RunRequest(run_config={"ops": {"variables": {"config": {"campaign_id": "c3"}}}})
    assert _launch(defs, instance, "publish_campaigns", hand).success
    assert ("c3", ids["lead1@example.com"], f"c3:{ids['lead1@example.com']}") in _campaign_members(org)
    assert len(_campaign_members(org)) == 5  # members are inserted once: c1's and c2's were not sent again


def test_campaigns_that_ended_yesterday_get_their_metrics(
    defs: dg.Definitions, instance: dg.DagsterInstance, campaigns: DuckDBWarehouse
) -> None:
    (request,) = _tick(defs, instance, "campaign_metrics")
    assert _launch(defs, instance, "campaign_metrics", request).success
    assert _launch(defs, instance, "campaign_metrics", request).success  # a re-run replaces, never duplicates
    assert sql(campaigns, "select campaign_id, clicks from workflows.campaign_final_metrics") == [("c4", 70)]
