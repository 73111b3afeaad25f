"""The `lineage_unchanged` sensor on a small graph the sample does not have (a diamond over two sources):
it confirms exactly the assets that still hold their inputs' current data, never one waiting for a rebuild."""

from __future__ import annotations

import dagster as dg

from platform_assets.automation import unchanged

VERSIONS = {"a": "1", "b": "1"}


def _source(name: str) -> dg.AssetsDefinition:
    @dg.asset(key=["raw", "src", name], tags={"layer": "ingestion"})
    def _ingest() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=dg.DataVersion(VERSIONS[name]))

    return _ingest


@dg.asset(
    key=["mart", "joined"],
    deps=[["raw", "src", "a"], ["raw", "src", "b"]],
    code_version="sql-1",
    tags={"layer": "transformation"},
    check_specs=[dg.AssetCheckSpec("unique_id", asset=["mart", "joined"], blocking=True)],
)
def joined() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])


@dg.asset(key=["crm", "push"], deps=[["mart", "joined"]], tags={"layer": "activation"})
def push() -> None:
    return None


ASSETS = [_source("a"), _source("b"), joined, push]
SOURCE_A, SOURCE_B = dg.AssetKey(["raw", "src", "a"]), dg.AssetKey(["raw", "src", "b"])


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[str]:
    sensor = defs.resolve_sensor_def(unchanged.SENSOR_NAME)
    result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    built = [e for e in result.asset_events if isinstance(e, dg.AssetMaterialization)]
    return [e.asset_key.to_user_string() for e in built]


def test_confirms_only_what_holds_current_data() -> None:
    sensor = unchanged.build_unchanged_lineage_sensor(dg.DefaultSensorStatus.STOPPED)
    defs = dg.Definitions(assets=ASSETS, sensors=[sensor])
    instance = dg.DagsterInstance.ephemeral()
    VERSIONS.update(a="1", b="1")
    assert dg.materialize(ASSETS, instance=instance).success
    assert _tick(defs, instance) == [], "nothing is behind an input yet"

    before = instance.get_latest_materialization_event(joined.key)
    assert dg.materialize(ASSETS, instance=instance, selection=[SOURCE_A]).success  # 0 new rows
    assert _tick(defs, instance) == ["mart/joined", "crm/push"], "sources first, down to the sync"
    after = instance.get_latest_materialization_event(joined.key)
    assert after.timestamp > before.timestamp and not after.run_id, "a run-less materialization"
    assert after.asset_materialization.tags == before.asset_materialization.tags, "same data version"
    check = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(joined.key, "unique_id"))
    assert check.evaluation.passed and check.evaluation.metadata[unchanged.CONFIRMED]
    assert _tick(defs, instance) == [], "once per input update"

    VERSIONS["b"] = "2"  # b lands rows: the mart waits for its rebuild, so does the sync
    assert dg.materialize(ASSETS, instance=instance, selection=[SOURCE_B]).success
    assert dg.materialize(ASSETS, instance=instance, selection=[SOURCE_A]).success
    assert _tick(defs, instance) == [], "never confirm an asset whose input changed"

    assert dg.materialize(ASSETS, instance=instance, selection=[joined.key]).success  # rebuilt
    assert _tick(defs, instance) == [], "the sync waits for the mart's new data"
    assert dg.materialize(ASSETS, instance=instance, selection=[push.key]).success
    assert dg.materialize(ASSETS, instance=instance, selection=[SOURCE_A]).success
    assert _tick(defs, instance) == ["mart/joined", "crm/push"]


def test_a_changed_code_version_is_not_confirmed() -> None:
    sensor = unchanged.build_unchanged_lineage_sensor(dg.DefaultSensorStatus.STOPPED)
    instance = dg.DagsterInstance.ephemeral()
    VERSIONS.update(a="1", b="1")
    assert dg.materialize(ASSETS, instance=instance).success
    edited = dg.Definitions(assets=ASSETS, sensors=[sensor]).map_resolved_asset_specs(
        func=lambda spec: spec.replace_attributes(code_version="sql-2"), selection=[joined.key]
    )
    assert dg.materialize(ASSETS, instance=instance, selection=[SOURCE_A]).success
    assert _tick(edited, instance) == [], "new SQL: the mart waits for its rebuild, and the sync with it"
