"""Sync assets in Dagster: audit metadata, the no_failed_records check, and blocking checks of the model."""

from __future__ import annotations

import dagster as dg
import pytest
from conftest import Warehouse, lead_spec

from local_stack.sandbox.salesforce import SandboxHandle
from platform_assets.components.retries import RetryDecl
from platform_assets.components.salesforce_syncs import SalesforceSyncsComponent, build_sync_asset
from platform_assets.dbt_manifest import DbtModel
from platform_assets.integrations.salesforce.resource import SalesforceResource

MODEL_KEY = dg.AssetKey(["activation", "act_test_leads"])
MODEL = DbtModel("act_test_leads", MODEL_KEY)
CHECKED_MODEL = DbtModel("act_test_leads", MODEL_KEY, blocking_tests=("unique_signup_id",))
SYNC_KEY = dg.AssetKey(["salesforce", "test_leads"])


def model_asset(checks_pass: bool) -> dg.AssetsDefinition:
    @dg.asset(
        key=MODEL_KEY, check_specs=[dg.AssetCheckSpec("unique_signup_id", asset=MODEL_KEY, blocking=True)]
    )
    def model() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            check_results=[dg.AssetCheckResult(check_name="unique_signup_id", passed=checks_pass)]
        )

    return model


@pytest.fixture
def resources(org: SandboxHandle, warehouse: Warehouse) -> dict[str, object]:
    return {
        "salesforce": SalesforceResource(
            login_url=org.url,
            client_id=org.client_id,
            client_secret=org.client_secret,
            max_attempts=3,
            backoff_initial=0.01,
            backoff_max=0.05,
            poll_interval=0.02,
        ),
        "warehouse": warehouse.resource,
    }


def test_materialization_is_an_audit_trail_and_the_check_shows_failed_records(
    org: SandboxHandle, warehouse: Warehouse, resources, local_platform
):
    warehouse.make_leads(40)
    org.fail_records(0.05, message="Email domain is blocked")

    result = dg.materialize(
        [build_sync_asset(lead_spec(batch_size=40), MODEL, "warehouse")], resources=resources
    )

    assert result.success
    metadata = {
        k: getattr(v, "value", v)
        for k, v in result.asset_materializations_for_node("salesforce__test_leads")[0].metadata.items()
    }
    assert metadata["planned_added"] == metadata["sent_added"] == 40
    assert (metadata["succeeded_added"], metadata["failed_added"]) == (38, 2)
    assert metadata["planned_changed"] == metadata["planned_removed"] == 0
    assert len(metadata["bulk_job_ids"]) == 1
    assert metadata["api_calls"] > 0
    assert metadata["daily_api_requests_max"] > metadata["daily_api_requests_remaining"] > 0
    assert metadata["salesforce_object"] == "Lead"
    assert metadata["salesforce_url"].endswith("/lightning/o/Lead/list")
    assert metadata["dagster/row_count"] == 38
    assert "Email domain is blocked" in str(metadata["failure_sample"])
    assert not any("secret" in str(value) for value in metadata.values())

    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "no_failed_records"
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["failed_records"].value == 2
    assert "Email domain is blocked" in str(evaluation.metadata["sample"].value)


def test_sync_asset_config_runs_a_full_resync(
    org: SandboxHandle, warehouse: Warehouse, resources, local_platform
):
    warehouse.make_leads(5)
    sync = build_sync_asset(lead_spec(), CHECKED_MODEL, "warehouse")
    dg.materialize([sync], resources=resources)

    result = dg.materialize(
        [sync],
        resources=resources,
        run_config=dg.RunConfig(ops={"salesforce__test_leads": {"config": {"full_resync": True}}}),
    )

    materialization = result.asset_materializations_for_node("salesforce__test_leads")[0]
    assert materialization.metadata["planned_changed"].value == 5
    assert materialization.metadata["full_resync"].value is True


def test_failed_blocking_check_in_the_same_run_stops_the_sync(
    org: SandboxHandle, warehouse: Warehouse, resources, local_platform
):
    warehouse.make_leads(5)

    result = dg.materialize(
        [model_asset(checks_pass=False), build_sync_asset(lead_spec(), CHECKED_MODEL, "warehouse")],
        resources=resources,
        raise_on_error=False,
    )

    assert not result.asset_materializations_for_node("salesforce__test_leads")
    assert org.count("Lead") == 0


def test_failed_blocking_check_in_an_earlier_run_stops_a_later_sync_run(
    org: SandboxHandle, warehouse: Warehouse, resources, local_platform
):
    warehouse.make_leads(5)
    sync = build_sync_asset(lead_spec(), CHECKED_MODEL, "warehouse")
    assets = [model_asset(checks_pass=False), sync]
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize(
            assets, selection=[MODEL_KEY], instance=instance, resources=resources, raise_on_error=False
        )

        result = dg.materialize(
            assets, selection=[SYNC_KEY], instance=instance, resources=resources, raise_on_error=False
        )

        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = str(failure.step_failure_data.error)
        assert "unique_signup_id" in message and "activation/act_test_leads" in message
        assert org.count("Lead") == 0

        dg.materialize(
            [model_asset(checks_pass=True), sync],
            selection=[MODEL_KEY],
            instance=instance,
            resources=resources,
        )
        assert dg.materialize(
            [model_asset(True), sync], selection=[SYNC_KEY], instance=instance, resources=resources
        ).success
        assert org.count("Lead") == 5


# --- retries: transient failures are retried by the asset's policy, deterministic ones are not ----------

FAST_RETRY = RetryDecl(max_retries=2, delay_seconds=0.01).policy()


def step_attempts(result: dg.ExecuteInProcessResult) -> tuple[int, int]:
    """(step starts, steps up for retry) of the run: each attempt starts the step once."""
    types = [event.event_type for event in result.all_events]
    return (
        types.count(dg.DagsterEventType.STEP_START) + types.count(dg.DagsterEventType.STEP_RESTARTED),
        types.count(dg.DagsterEventType.STEP_UP_FOR_RETRY),
    )


def test_salesforce_unavailable_once_is_retried_by_the_policy_and_the_sync_succeeds(
    org: SandboxHandle, warehouse: Warehouse, resources, local_platform
):
    warehouse.make_leads(5)
    # The resource's client tries 3 times: 3 server errors exhaust them (SalesforceUnavailable) once.
    org.server_errors(3, status=500, path="/jobs/ingest")

    result = dg.materialize(
        [build_sync_asset(lead_spec(), MODEL, "warehouse", FAST_RETRY)], resources=resources
    )

    assert result.success
    assert step_attempts(result) == (2, 1)
    assert (
        result.asset_materializations_for_node("salesforce__test_leads")[0].metadata["succeeded_added"].value
        == 5
    )
    assert org.count("Lead") == 5


def test_a_mapping_error_fails_once_without_a_retry(
    org: SandboxHandle, warehouse: Warehouse, resources, local_platform
):
    warehouse.make_leads(5)
    spec = lead_spec(mapping={**lead_spec().mapping, "FirstName": "IsConverted"})

    result = dg.materialize(
        [build_sync_asset(spec, MODEL, "warehouse", FAST_RETRY)], resources=resources, raise_on_error=False
    )

    assert not result.success
    assert step_attempts(result) == (1, 0)
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.to_string()
    assert "SyncMappingError" in message and "IsConverted" in message and "not retried" in message


def test_retry_is_declared_in_the_component_and_can_be_turned_off():
    policy = RetryDecl().policy()
    assert policy is not None
    assert (policy.max_retries, policy.delay) == (3, 30.0)
    assert (policy.backoff, policy.jitter) == (dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)
    assert RetryDecl(max_retries=0).policy() is None
    assert SalesforceSyncsComponent(retry=None).retry is None
