"""Per-customer reports and workflows in the UI (docs/workflows.md): a report's partitions with each one's
status, and a workflow run launched from the launchpad showing its variables as run tags.

Set-up goes where the platform's own machinery would put it: the partition keys through Dagster's API (as
the partition sensor adds them), the relations the report and the workflow read into the session's
warehouse (a cycle would build them), the partition runs as a backfill (as the UI's Materialize does).
"""

from __future__ import annotations

import re
import time

import pytest

from local_stack.browser import dagster_ui
from platform_assets.warehouse import connect_duckdb

pytestmark = pytest.mark.browser

REPORT = ("reports", "workspace_usage")
PARTITION_SET = "workspaces"
BUILT, NOT_BUILT = ["ws_ui_a", "ws_ui_b"], "ws_ui_c"
WORKFLOW = "campaign_metrics"
CAMPAIGN = "cmp_0042"


def _repository(ui) -> dict[str, str]:
    return {"repositoryName": "__repository__", "repositoryLocationName": ui.platform.location}


def _warehouse(ui, *statements: str) -> None:
    """The session's DuckDB file; no run is writing it between tests (each test waits for its runs)."""
    connection = connect_duckdb(ui.platform.local_dir / "warehouse.duckdb")
    try:
        for statement in statements:
            connection.execute(statement)
    finally:
        connection.close()


def _add_partitions(ui, keys: list[str]) -> None:
    for key in keys:
        result = dagster_ui.graphql(
            ui.platform.url,
            """mutation($repo: RepositorySelector!, $set: String!, $key: String!) {
                addDynamicPartition(repositorySelector: $repo, partitionsDefName: $set, partitionKey: $key) {
                  __typename ... on PythonError { message } } }""",
            {"repo": _repository(ui), "set": PARTITION_SET, "key": key},
        )["addDynamicPartition"]
        assert result["__typename"] == "AddDynamicPartitionSuccess", result


def _backfill(ui, keys: list[str]) -> str:
    result = dagster_ui.graphql(
        ui.platform.url,
        """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
            __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {
            "params": {
                "assetSelection": [{"path": list(REPORT)}],
                "partitionNames": keys,
                "fromFailure": False,
            }
        },
    )["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def _wait_for_partitions(ui, keys: list[str], timeout_s: float = 420) -> None:
    """Until each key's latest run of the report succeeded (the daemon launches the backfill's runs)."""
    deadline = time.monotonic() + timeout_s
    while True:
        data = dagster_ui.graphql(
            ui.platform.url,
            """query($key: AssetKeyInput!, $partitions: [String!]) { assetNodeOrError(assetKey: $key) {
                ... on AssetNode { assetMaterializations(partitions: $partitions) { partition } } } }""",
            {"key": {"path": list(REPORT)}, "partitions": keys},
        )
        done = {m["partition"] for m in data["assetNodeOrError"]["assetMaterializations"]}
        if done >= set(keys):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"partitions {sorted(set(keys) - done)} of {'/'.join(REPORT)} not materialized")
        time.sleep(3)


def test_report_partitions_show_each_customers_status(ui) -> None:
    _warehouse(
        ui,
        "create schema if not exists staging",
        "create table if not exists staging.int_workspace_activity (workspace_id varchar, as_of timestamp, "
        "last_active_at timestamp, active_users_30d bigint, usage_30d bigint, usage_last_14d bigint, "
        "usage_prior_14d bigint)",
        "insert into staging.int_workspace_activity by name select workspace_id, now() as as_of, "
        "7 as active_users_30d, 420 as usage_30d from (values ('ws_ui_a'), ('ws_ui_b')) t(workspace_id)",
    )
    _add_partitions(ui, [*BUILT, NOT_BUILT])
    _backfill(ui, BUILT)
    _wait_for_partitions(ui, BUILT)

    ui.open("/assets/" + "/".join(REPORT) + "?view=partitions")
    for key in [*BUILT, NOT_BUILT]:
        ui.page.get_by_text(key, exact=True).first.wait_for()
    # The status filters count the partitions in each state; a partition shows its latest materialization.
    ui.page.get_by_text("Materialized (2)", exact=True).wait_for()
    ui.page.get_by_text("Missing (1)", exact=True).wait_for()
    ui.page.get_by_text(BUILT[0], exact=True).first.click()
    ui.page.get_by_text("rows", exact=True).first.wait_for()
    ui.settle()
    ui.screenshot("report_partitions")


def test_workflow_run_from_the_launchpad_shows_its_variables(ui) -> None:
    _warehouse(
        ui,
        "create schema if not exists marketing",
        "create table if not exists marketing.mkt_campaign_attribution (campaign_id varchar, spend double, "
        "impressions bigint, clicks bigint, signups bigint)",
    )
    ui.open_launchpad(f"workflow_{WORKFLOW}")
    ui.type_launchpad_config(f"ops:\n  variables:\n    config:\n      campaign_id: {CAMPAIGN}\n")
    ui.page.get_by_text("No errors", exact=True).wait_for()
    ui.page.get_by_role("button", name=re.compile("Launch Run")).click()
    ui.page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = ui.page.url.rsplit("/runs/", 1)[1].split("?")[0].strip("/")
    status = ui.wait_for_run_page_status(run_id)
    assert status == "Success", f"workflow run {run_id} ended {status}:\n{ui.run_failure_summary(run_id)}"

    # The Runs page, filtered on the workflow: the run with its variables (and version) as tags.
    ui.open(f"/runs?q%5B0%5D=tag%3Aworkflow%2Fname%3D{WORKFLOW}")
    ui.page.get_by_text(f"workflow/var.campaign_id: {CAMPAIGN}").first.wait_for()
    ui.page.get_by_text(re.compile(r"^workflow/version: [0-9a-f]{12}$")).first.wait_for()
    ui.settle()
    ui.screenshot("workflow_runs")
