"""A simulated day of the platform, evaluated by Dagster's own automation-condition engine.

The assets are test-only but shaped like the platform (tests/automation/platform_like.py) and get their
conditions and freshness policies from `apply_platform_policy`, so what is tested is the policy.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.definitions.data_version import DATA_VERSION_TAG  # the tag a data version is stored in

from automation.platform_like import CHECK_OUTCOME, platform_assets, platform_defs
from platform_assets.automation.jobs import CYCLE_TAG, INGESTION_CYCLE_JOB

FINANCE_CHAIN = {
    "staging/stg_invoices",
    "finance/fin_mrr",
    "activation/act_salesforce_account_arr",
    "salesforce/account_arr",
}
TOPOLOGICAL_ORDER = [asset.key.to_user_string() for asset in platform_assets()]  # declared upstream first
MARKETING_CHAIN = {"staging/stg_campaigns", "marketing/mkt_campaign_attribution", "hightouch/campaigns_ads"}


class Platform:
    """An instance, a simulated clock and the automation cursor, ticking like the daemon would."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.defs = platform_defs()
        self.instance = instance
        self.cursor = None
        self.versions: dict[str, str] = {}
        # Simulated time starts after the real clock, so every materialization is "before" the next tick.
        self.now = dt.datetime.now(dt.UTC).replace(minute=1, second=0, microsecond=0) + dt.timedelta(hours=1)
        self.keys = [spec.key for spec in self.defs.resolve_all_asset_specs()]

    def tick(self, at: dt.datetime | None = None) -> set[str]:
        """One automation tick; returns the assets it requested."""
        self.now = at or self.now + dt.timedelta(minutes=1)
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, evaluation_time=self.now, cursor=self.cursor
        )
        self.cursor = result.cursor
        return {key.to_user_string() for key in self.keys if result.get_num_requested(key)}

    def update(self, keys: set[str], new_data: bool = True) -> None:
        """Record that these assets updated (a quick stand-in for their runs): with `new_data` each gets a
        new data version, as a stream that landed rows or a model rebuilt from them; without, it keeps its
        version, as a stream whose run found nothing new. Checks report as they would."""
        for key in sorted(keys, key=TOPOLOGICAL_ORDER.index):
            asset_key = dg.AssetKey.from_user_string(key)
            if new_data or key not in self.versions:
                self.versions[key] = f"v{len(self.versions)}-{time.monotonic_ns()}"
            tags = {DATA_VERSION_TAG: self.versions[key]}
            self.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key, tags=tags))
            if key == "activation/act_salesforce_account_arr":
                passed = CHECK_OUTCOME["act_salesforce_account_arr"]
                self.instance.report_runless_asset_event(
                    dg.AssetCheckEvaluation(
                        asset_key=asset_key, check_name="not_null_workspace_id", passed=passed
                    )
                )

    def run(self, keys: set[str]) -> dg.ExecuteInProcessResult:
        """Execute what a tick requested for real, as the run the automation sensor would launch."""
        selection = [dg.AssetKey.from_user_string(key) for key in sorted(keys)]
        return self.defs.resolve_job_def("everything").execute_in_process(
            instance=self.instance, asset_selection=selection, raise_on_error=False
        )


@pytest.fixture
def platform() -> Iterator[Platform]:
    CHECK_OUTCOME["act_salesforce_account_arr"] = True
    world = Platform(dg.DagsterInstance.ephemeral())
    world.update({key.to_user_string() for key in world.keys if key.path[0] != "platform"})
    assert world.tick() == set(), "a fully materialized platform needs nothing on the first tick"
    yield world
    CHECK_OUTCOME["act_salesforce_account_arr"] = True


def test_cycle_tick_starts_ingestion_of_cycle_sources_only(platform: Platform) -> None:
    schedule = platform.defs.resolve_schedule_def("platform_cycle_start")
    tick_time = platform.now.replace(minute=0) + dt.timedelta(hours=1)
    with dg.build_schedule_context(instance=platform.instance, scheduled_execution_time=tick_time) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1 and requests[0].tags[CYCLE_TAG] == tick_time.isoformat()
    assert schedule.job_name == INGESTION_CYCLE_JOB

    cycle = platform.defs.resolve_job_def(INGESTION_CYCLE_JOB).execute_in_process(instance=platform.instance)
    loaded = {event.asset_key.to_user_string() for event in cycle.get_asset_materialization_events()}
    # Salesforce declares its own cadence, so the cycle leaves it to its own 15-minute ticks.
    assert loaded == {"raw/landing/invoices", "raw/landing/campaigns", "raw/app_db/subscriptions"}
    # Every domain downstream of the cycle follows; the hour is also one of Salesforce's own ticks.
    expected = FINANCE_CHAIN | MARKETING_CHAIN | {"raw/salesforce/account"}
    evaluated_at = tick_time + dt.timedelta(minutes=1)
    if tick_time.hour == 3:  # the simulated clock follows the real one: at 03:00 the expensive model's
        expected |= {"sales/sales_pipeline"}  # own cron ticks too (tested on its own below)
    assert platform.tick(evaluated_at) == expected


def test_source_with_own_cadence_is_requested_on_its_ticks_only(platform: Platform) -> None:
    quarter = platform.now.replace(minute=14)
    assert "raw/salesforce/account" not in platform.tick(quarter)
    requested = platform.tick(quarter + dt.timedelta(minutes=2))  # 15-minute tick passed
    assert requested == {"raw/salesforce/account"}, "a source on its cadence may find nothing new"
    platform.update(requested, new_data=False)  # its run landed 0 rows
    assert platform.tick(quarter + dt.timedelta(minutes=3)) == set(), "no new data, nothing downstream"
    platform.update(requested)  # a later run lands rows: exactly its lineage follows
    lineage = platform.tick(quarter + dt.timedelta(minutes=4))
    assert lineage == {"activation/act_salesforce_account_arr", "salesforce/account_arr"}
    platform.update(lineage)
    assert platform.tick(quarter + dt.timedelta(minutes=5)) == set()


def test_domains_update_independently_and_nothing_is_requested_twice(platform: Platform) -> None:
    platform.update({"raw/landing/invoices", "raw/app_db/subscriptions"})  # finance inputs land
    finance = platform.tick()
    assert finance == FINANCE_CHAIN, "finance runs without waiting for marketing's ingestion"
    platform.update(finance)
    assert platform.tick() == set()

    platform.update({"raw/landing/campaigns"})  # marketing's inputs land later
    marketing = platform.tick()
    assert marketing == MARKETING_CHAIN
    platform.update(marketing)
    assert platform.tick() == set()
    assert platform.tick() == set()


def test_failing_blocking_check_holds_the_sync_until_it_passes(platform: Platform) -> None:
    CHECK_OUTCOME["act_salesforce_account_arr"] = False
    platform.update({"activation/act_salesforce_account_arr"})  # updated by a run whose dbt test failed
    assert "salesforce/account_arr" not in platform.tick(), (
        "a sync must not read a model that failed its tests"
    )
    assert platform.tick() == set()

    CHECK_OUTCOME["act_salesforce_account_arr"] = True
    platform.update({"activation/act_salesforce_account_arr"})
    assert platform.tick() == {"salesforce/account_arr"}


def test_blocking_check_failing_inside_the_run_skips_the_sync(platform: Platform) -> None:
    CHECK_OUTCOME["act_salesforce_account_arr"] = False
    platform.update({"raw/landing/invoices"})
    requested = platform.tick()
    assert requested == FINANCE_CHAIN  # model and sync in one run: the run machinery enforces the check
    result = platform.run(requested)
    updated = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert "salesforce/account_arr" not in updated and "activation/act_salesforce_account_arr" in updated
    assert platform.tick() == set()


def test_expensive_model_runs_on_its_own_cron_after_its_inputs(platform: Platform) -> None:
    # The first 03:00 at least half an hour after the simulated start (so the tick before it is still
    # after the start), whatever the wall-clock hour: the previous 03:00 then precedes the start.
    start = platform.now + dt.timedelta(minutes=30)
    three_am = start.replace(hour=3, minute=0)
    if three_am <= start:
        three_am += dt.timedelta(days=1)
    before = platform.tick(three_am - dt.timedelta(minutes=30))  # Salesforce's own cadence passed
    assert before == {"raw/salesforce/account"}
    platform.update(before)
    lineage = platform.tick(three_am - dt.timedelta(minutes=29))
    assert "activation/act_salesforce_account_arr" in lineage
    assert "sales/sales_pipeline" not in lineage, "the expensive model ignores updates between its cron ticks"
    platform.update(lineage)
    assert platform.tick(three_am - dt.timedelta(minutes=28)) == set()
    # At 03:00 its input is requested too: "all inputs updated since the tick" counts inputs requested in
    # the same tick, so the model joins that run and runs after its input.
    requested = platform.tick(three_am + dt.timedelta(seconds=30))
    assert requested == {"raw/salesforce/account", "sales/sales_pipeline"}
    platform.update(requested)
    follow = platform.tick(three_am + dt.timedelta(minutes=2))  # the source's new data reaches its lineage
    assert follow == {"activation/act_salesforce_account_arr", "salesforce/account_arr"}
    platform.update(follow)
    assert platform.tick(three_am + dt.timedelta(minutes=3)) == set()
    next_quarter = platform.tick(three_am + dt.timedelta(minutes=16))
    assert "raw/salesforce/account" in next_quarter and "sales/sales_pipeline" not in next_quarter, (
        "once per cron tick"
    )


def test_freshness_policies_come_from_layer_defaults_and_declarations(platform: Platform) -> None:
    specs = {spec.key.to_user_string(): spec for spec in platform.defs.resolve_all_asset_specs()}
    window = {key: spec.freshness_policy for key, spec in specs.items()}
    assert window["salesforce/account_arr"] == dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(minutes=30), warn_window=dt.timedelta(minutes=20)
    )
    assert window["hightouch/campaigns_ads"] == dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=6)
    )
    assert window["finance/fin_mrr"] == dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=3), warn_window=dt.timedelta(hours=2)
    )
    assert window["staging/stg_invoices"] is None and window["raw/landing/invoices"] is None


def _daemon_freshness_event(key: str, new: str, previous: str) -> object:
    """The FreshnessStateChange record exactly as the freshness daemon serializes it into the event log."""
    return dg.deserialize_value(
        json.dumps(
            {
                "__class__": "FreshnessStateChange",
                "key": {"__class__": "AssetKey", "path": key.split("/")},
                "new_state": {"__enum__": f"FreshnessState.{new}"},
                "previous_state": {"__enum__": f"FreshnessState.{previous}"},
                "state_change_timestamp": time.time(),
            }
        )
    )


def test_freshness_failure_sends_one_alert_naming_the_asset(
    platform: Platform, webhook, declared_alerts
) -> None:
    sensor = platform.defs.resolve_sensor_def("freshness_alerts")
    alerts = declared_alerts(
        PLATFORM_ALERT_SLACK_WEBHOOK_URL=webhook.url, PLATFORM_DAGSTER_URL="http://dagster.example:3000"
    )
    platform.instance.report_runless_asset_event(
        _daemon_freshness_event("finance/fin_mrr", "PASS", "UNKNOWN")
    )
    platform.instance.report_runless_asset_event(
        _daemon_freshness_event("salesforce/account_arr", "FAIL", "PASS")
    )

    context = dg.build_sensor_context(instance=platform.instance, resources={"alerts": alerts})
    sensor(context)
    assert len(webhook.messages) == 1
    text = webhook.messages[0]["text"]
    assert "Freshness failed" in text and "salesforce/account_arr" in text and "fin_mrr" not in text
    assert "http://dagster.example:3000/assets/salesforce/account_arr" in text

    again = dg.build_sensor_context(
        instance=platform.instance, cursor=context.cursor, resources={"alerts": alerts}
    )
    sensor(again)
    assert len(webhook.messages) == 1, "a state change is alerted once"
