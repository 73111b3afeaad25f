"""dagster-hightouch's own resource and component, unchanged apart from the base URL, against the sandbox.

This keeps the sandbox honest: it answers the calls the community integration makes (trigger by id with
no body, list runs by runId, get sync, get destination) the way the real API does.
"""

from __future__ import annotations

import dagster as dg
import dagster_hightouch.resources as ht_resources
import pytest
from dagster_hightouch import ConfigurableHightouchResource, HightouchSyncComponent

TRIAL = "trial-nurture-braze"


@pytest.fixture
def dagster_hightouch_on_sandbox(sandbox, monkeypatch):
    # The library hard-codes its base URL as a module constant; point it at the sandbox for this test only.
    monkeypatch.setattr(ht_resources, "HIGHTOUCH_API_BASE", f"{sandbox.api_base_url}/")
    return ConfigurableHightouchResource(api_key=sandbox.api_key, poll_interval=0.05, poll_timeout=30)


def test_dagster_hightouch_resource_completes_a_sync_against_the_sandbox(
    sandbox, dagster_hightouch_on_sandbox
):
    sync_id = str(sandbox.sync_id(TRIAL))

    @dg.asset
    def trial_audience(hightouch: ConfigurableHightouchResource) -> dg.MaterializeResult:
        output = hightouch.sync_and_poll(sync_id)
        return dg.MaterializeResult(
            metadata={
                "status": output.sync_run_details["status"],
                "planned_added": output.sync_run_details["plannedRows"]["addedCount"],
                "destination_type": output.destination_details["type"],
            }
        )

    result = dg.materialize([trial_audience], resources={"hightouch": dagster_hightouch_on_sandbox})
    (materialization,) = result.asset_materializations_for_node("trial_audience")
    values = {name: value.value for name, value in materialization.metadata.items()}
    assert values == {"status": "success", "planned_added": 5, "destination_type": "braze"}
    assert len(sandbox.destination_records(TRIAL)) == 5


def test_dagster_hightouch_component_asset_fails_with_the_sandbox_run_error(
    sandbox, dagster_hightouch_on_sandbox
):
    sandbox.fault_next_run(TRIAL, "fail", "Braze workspace is suspended")
    component = HightouchSyncComponent(
        asset=dg.AssetSpec(key=["hightouch_lib", "trial"]), sync_id=str(sandbox.sync_id(TRIAL))
    )
    defs = dg.build_defs_for_component(component)
    result = dg.materialize(
        list(defs.assets), resources={"hightouch": dagster_hightouch_on_sandbox}, raise_on_error=False
    )
    assert not result.success
    (failed_step,) = [event for event in result.all_events if event.is_step_failure]
    assert "Braze workspace is suspended" in failed_step.step_failure_data.error.message
