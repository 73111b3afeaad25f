"""Hightouch sync assets materialized through Dagster against the sandbox (the component's own defs)."""

from __future__ import annotations

import dagster as dg

from platform_assets.components.retries import RetryDecl

TRIAL_KEY = dg.AssetKey(["hightouch", "trial_nurture_braze"])
EXPANSION_KEY = dg.AssetKey(["hightouch", "expansion_accounts_google_ads"])
TRIAL, EXPANSION = "trial-nurture-braze", "expansion-accounts-google-ads"


def materialize(defs: dg.Definitions, key: dg.AssetKey) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(defs.assets), resources=dict(defs.resources), selection=[key], raise_on_error=False
    )


def node_name(key: dg.AssetKey) -> str:
    return f"hightouch_{key.path[-1]}"


def metadata_of(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, object]:
    (materialization,) = result.asset_materializations_for_node(node_name(key))
    return {name: value.value for name, value in materialization.metadata.items()}


def failure_text(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> str:
    assert not result.success
    failure = result.failure_data_for_node(node_name(key))
    return failure.user_failure_data.description if failure.user_failure_data else failure.error.message


def test_materializing_a_sync_reports_hightouch_row_counts_and_run_link(sandbox, build_component_defs):
    result = materialize(build_component_defs(), TRIAL_KEY)
    assert result.success
    metadata = metadata_of(result, TRIAL_KEY)
    assert (metadata["planned_added"], metadata["planned_changed"], metadata["planned_removed"]) == (5, 0, 0)
    assert metadata["successful_added"] == 5 and metadata["failed_total"] == 0
    assert [(c.check_name, c.passed) for c in result.get_asset_check_evaluations()] == [
        ("no_rejected_rows", True)
    ]
    assert metadata["query_size"] == 5 and metadata["completion_ratio"] == 1.0
    assert metadata["hightouch/status"] == "success"
    assert metadata["destination"] == "Braze (trial nurture journey)"
    run_id = metadata["hightouch/run_id"]
    assert metadata["hightouch/run_url"] == f"{sandbox.url}/syncs/{sandbox.sync_id(TRIAL)}/runs/{run_id}"
    assert len(sandbox.destination_records(TRIAL)) == 5


def test_second_materialization_without_model_change_plans_zero_changes(sandbox, build_component_defs):
    defs = build_component_defs()
    assert materialize(defs, EXPANSION_KEY).success
    second = materialize(defs, EXPANSION_KEY)
    assert second.success
    metadata = metadata_of(second, EXPANSION_KEY)
    assert metadata["planned_total"] == 0 and metadata["query_size"] == 3


def test_failed_hightouch_run_fails_the_asset_with_hightouchs_error(sandbox, build_component_defs):
    sandbox.fault_next_run(TRIAL, "fail", "Braze rejected the request: invalid API key for workspace 'mkt'")
    result = materialize(build_component_defs(), TRIAL_KEY)
    text = failure_text(result, TRIAL_KEY)
    assert "ended 'failed'" in text
    assert "Braze rejected the request: invalid API key for workspace 'mkt'" in text
    assert result.asset_materializations_for_node(node_name(TRIAL_KEY)) == []


def test_cancelled_run_fails_the_asset(sandbox, build_component_defs):
    sandbox.fault_next_run(EXPANSION, "cancel", "Cancelled by a user in Hightouch")
    text = failure_text(materialize(build_component_defs(), EXPANSION_KEY), EXPANSION_KEY)
    assert "ended 'cancelled'" in text and "Cancelled by a user in Hightouch" in text


def test_warning_passes_when_the_sync_says_on_warning_pass(sandbox, build_component_defs):
    sandbox.fault_next_run(TRIAL, "warn", "1 e-mail address bounced", failed_rows=1)
    result = materialize(build_component_defs(), TRIAL_KEY)
    assert result.success
    metadata = metadata_of(result, TRIAL_KEY)
    assert metadata["hightouch/status"] == "warning"
    assert metadata["failed_added"] == 1 and metadata["successful_added"] == 4
    assert metadata["hightouch/error"] == "1 e-mail address bounced"
    (check,) = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed, check.severity) == (
        "no_rejected_rows",
        False,
        dg.AssetCheckSeverity.WARN,
    )
    assert check.metadata["failed_total"].value == 1 and "1 e-mail address bounced" in check.description


def test_warning_fails_when_the_sync_says_on_warning_fail(sandbox, build_component_defs):
    sandbox.fault_next_run(EXPANSION, "warn", "Customer Match rejected 1 row", failed_rows=1)
    text = failure_text(materialize(build_component_defs(), EXPANSION_KEY), EXPANSION_KEY)
    assert "on_warning is 'fail'" in text and "Customer Match rejected 1 row" in text


def test_429_burst_during_materialization_is_retried(sandbox, build_component_defs):
    sandbox.rate_limit_next(4)
    result = materialize(build_component_defs(), TRIAL_KEY)
    assert result.success
    assert sandbox.refused_requests == 4
    assert metadata_of(result, TRIAL_KEY)["planned_added"] == 5


def test_stalled_run_fails_the_asset_after_the_poll_timeout(sandbox, build_component_defs):
    sandbox.fault_next_run(TRIAL, "stall")
    result = materialize(build_component_defs(poll_timeout_seconds=0.5), TRIAL_KEY)
    text = failure_text(result, TRIAL_KEY)
    assert "still 'processing'" in text
    sandbox.release(TRIAL)


# --- retries: the component's retry policy re-runs transient API failures only ---------------------------

FAST_RETRY = RetryDecl(max_retries=2, delay_seconds=0.01)


def step_attempts(result: dg.ExecuteInProcessResult) -> int:
    types = [event.event_type for event in result.all_events]
    return types.count(dg.DagsterEventType.STEP_START) + types.count(dg.DagsterEventType.STEP_RESTARTED)


def test_a_429_burst_beyond_the_clients_attempts_is_retried_by_the_assets_policy(
    sandbox, build_component_defs
):
    sandbox.rate_limit_next(2)
    result = materialize(build_component_defs(max_attempts=2, retry=FAST_RETRY), TRIAL_KEY)
    assert result.success
    assert step_attempts(result) == 2
    assert metadata_of(result, TRIAL_KEY)["planned_added"] == 5


def test_a_failed_hightouch_run_is_not_retried(sandbox, build_component_defs):
    sandbox.fault_next_run(TRIAL, "fail", "Braze rejected the request: invalid API key for workspace 'mkt'")
    result = materialize(build_component_defs(retry=FAST_RETRY), TRIAL_KEY)
    assert "ended 'failed'" in failure_text(result, TRIAL_KEY)
    assert step_attempts(result) == 1
