"""Landing streams through Dagster with real meltano, tap-landing and target-duckdb-bulk."""

from __future__ import annotations

import dagster as dg
import pytest

from local_stack.sample_company import append_rows, generate
from platform_assets import environment
from platform_assets.components.meltano import CHECK_NAME, ingestion_definitions
from platform_assets.resources import warehouse_resource
from platform_assets.warehouse import connect_duckdb

pytestmark = pytest.mark.integration
SOURCES = environment.PROJECT_ROOT / "platform_assets" / "defs" / "ingestion" / "sources.yaml"
CAMPAIGNS = dg.AssetKey(["raw", "landing", "campaigns"])
AD_SPEND = dg.AssetKey(["raw", "landing", "ad_spend"])


def materialize(keys: list[dg.AssetKey], full_refresh: bool = False) -> dg.ExecuteInProcessResult:
    defs = ingestion_definitions(SOURCES, environment.MELTANO_PROJECT_DIR)
    assets = list(defs.assets or [])
    resources = {**(defs.resources or {}), "warehouse": warehouse_resource()}
    return dg.materialize(
        assets,
        selection=keys,
        resources=resources,
        raise_on_error=False,
        run_config={"ops": {"meltano_landing": {"config": {"full_refresh": full_refresh}}}},
    )


def metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, bool]:
    return {e.asset_key: e.passed for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME}


def table_rows(table: str) -> int:
    connection = connect_duckdb(environment.current().duckdb_path, read_only=True)
    try:
        return connection.execute(f"SELECT count(*) FROM raw_landing.{table}").fetchone()[0]
    finally:
        connection.close()


def tables() -> set[str]:
    connection = connect_duckdb(environment.current().duckdb_path, read_only=True)
    try:
        return {r[0] for r in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        connection.close()


def test_landing_streams_load_incrementally_reconcile_and_fail_alone(meltano_plugins, local_platform):
    counts = generate(local_platform.landing_dir, scale=0.02, seed=11)

    # One stream selected: only it is extracted and loaded, and the check reconciles it.
    first = materialize([CAMPAIGNS, AD_SPEND])
    assert first.success
    assert tables() == {"campaigns", "ad_spend"}
    meta = metadata(first, CAMPAIGNS)
    assert meta["rows_extracted"] == meta["rows_landed"] == counts["campaigns"] == table_rows("campaigns")
    assert meta["target_table"] == "raw_landing.campaigns"
    assert meta["meltano_state_id"] == "local:tap-landing-to-target-duckdb-bulk"
    assert checks(first) == {CAMPAIGNS: True, AD_SPEND: True}

    # Nothing new: nothing loaded.
    second = materialize([CAMPAIGNS])
    assert second.success
    assert (metadata(second, CAMPAIGNS)["rows_extracted"], metadata(second, CAMPAIGNS)["rows_landed"]) == (
        0,
        0,
    )

    # One appended row loads exactly one row; a malformed ad_spend drop fails only ad_spend, naming the
    # file and line, and its earlier rows stay.
    append_rows(local_platform.landing_dir, "campaigns", 1, seed=3)
    bad = local_platform.landing_dir / "ad_spend" / "zz-broken.csv"
    bad.write_text(
        "spend_id,campaign_id,spend_date,impressions,clicks,spend\nspd_x,cmp_0001,not-a-date,1,1,1.00\n"
    )
    third = materialize([CAMPAIGNS, AD_SPEND])
    assert not third.success
    assert metadata(third, CAMPAIGNS)["rows_landed"] == 1 and checks(third) == {CAMPAIGNS: True}
    assert [e.asset_key for e in third.get_asset_materialization_events()] == [CAMPAIGNS]
    [failure] = third.get_step_failure_events()
    assert f"{bad} line 2: column 'spend_date'" in failure.step_failure_data.error.message
    assert "raw/landing/ad_spend" in failure.step_failure_data.error.message
    assert table_rows("ad_spend") == counts["ad_spend"]
    assert table_rows("campaigns") == counts["campaigns"] + 1

    # Full refresh re-extracts the stream from the start of every file; other streams keep their state.
    bad.unlink()
    fourth = materialize([CAMPAIGNS], full_refresh=True)
    assert fourth.success
    assert metadata(fourth, CAMPAIGNS)["rows_extracted"] == counts["campaigns"] + 1
    assert metadata(fourth, CAMPAIGNS)["rows_landed"] == counts["campaigns"] + 1
    # Re-sent lines are upserts on the lineage key: the loader restamps them and adds no copy.
    assert checks(fourth) == {CAMPAIGNS: True} and table_rows("campaigns") == counts["campaigns"] + 1
    fifth = materialize([CAMPAIGNS, AD_SPEND])
    assert fifth.success
    assert (
        metadata(fifth, CAMPAIGNS)["rows_extracted"] == 0 and metadata(fifth, AD_SPEND)["rows_extracted"] == 0
    )
