"""The sample company's declared workflows (platform_assets/defs/workflows/declared/), run for real.

The warehouse gets just the two relations they read (campaigns and their attribution) instead of a full
Meltano + dbt build: one campaign's signups are not a number, so its engagement step fails.
"""

from __future__ import annotations

import dagster as dg
import pytest

from platform_assets.automation.alerts import AlertsResource
from platform_assets.environment import PROJECT_ROOT
from platform_assets.warehouse import DuckDBWarehouse
from platform_assets.workflows import build
from platform_assets.workflows.spec import load_workflows

from .conftest import Receiver, sql

DECLARED = PROJECT_ROOT / "platform_assets" / "defs" / "workflows" / "declared"


@pytest.fixture
def campaigns(warehouse: DuckDBWarehouse) -> DuckDBWarehouse:
    sql(
        warehouse,
        "create schema staging",
        "create schema marketing",
        "create table staging.stg_landing__campaigns as select * from (values "
        "('c1', current_date, current_date + 30), ('c2', current_date, current_date + 30), "
        "('c3', current_date + 1, current_date + 30), ('c4', current_date - 40, current_date - 1)) "
        "as t(campaign_id, started_on, ended_on)",
        "create table marketing.mkt_campaign_attribution as select * from (values "
        "('c1', '12', 300, 10.0, 5000), ('c2', 'n/a', 10, 1.0, 20), ('c3', '0', 0, 0.0, 0), "
        "('c4', '7', 70, 99.5, 1000)) as t(campaign_id, signups, clicks, spend, impressions)",
    )
    return warehouse


@pytest.fixture
def defs(campaigns: DuckDBWarehouse, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    monkeypatch.setenv("WORKFLOW_TEST_WEBHOOK", f"{receiver.url}/hook")
    alerts = AlertsResource(channels=[{"type": "slack_webhook", "url_env": "WORKFLOW_TEST_WEBHOOK"}])
    workflows = [build.build_workflow_defs(workflow) for workflow in load_workflows(DECLARED)]
    defs = dg.Definitions.merge(
        *workflows, dg.Definitions(resources={"warehouse": campaigns, "alerts": alerts})
    )
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


def test_campaigns_starting_today_are_published_one_run_each(
    defs: dg.Definitions, instance: dg.DagsterInstance, campaigns: DuckDBWarehouse, receiver: Receiver
) -> None:
    requests = _tick(defs, instance, "publish_campaigns")
    assert [r.tags[build.TAG_KEY] for r in requests] == ["c1", "c2"]  # c3 starts tomorrow
    results = {r.tags[build.TAG_KEY]: _launch(defs, instance, "publish_campaigns", r) for r in requests}
    assert results["c1"].success and not results["c2"].success

    assert sql(campaigns, "select campaign_id, status from workflows.campaign_publications order by 1") == [
        ("c1", "published"),
        ("c2", "failed"),
    ]
    assert sql(campaigns, "select campaign_id, signups from workflows.campaign_engagement") == [("c1", 12)]
    assert sql(campaigns, "select campaign_id, status from workflows.campaign_outcomes order by 1") == [
        ("c1", "published"),
        ("c2", "failed"),
    ]
    (alert,) = [body["text"] for path, body in receiver.received if path == "/hook"]
    assert "Campaign c2 was not published" in alert

    # Next tick: c1 is published (the query leaves it out); c2 is retried as attempt 1.
    (retry,) = _tick(defs, instance, "publish_campaigns")
    assert (retry.tags[build.TAG_KEY], retry.tags[build.TAG_ATTEMPT]) == ("c2", "1")


def test_campaigns_that_ended_yesterday_get_their_metrics(
    defs: dg.Definitions, instance: dg.DagsterInstance, campaigns: DuckDBWarehouse
) -> None:
    (request,) = _tick(defs, instance, "campaign_metrics")
    assert _launch(defs, instance, "campaign_metrics", request).success
    assert _launch(defs, instance, "campaign_metrics", request).success  # a re-run replaces, never duplicates
    assert sql(campaigns, "select campaign_id, clicks from workflows.campaign_final_metrics") == [("c4", 70)]
