"""The cycle continuation on shapes the platform does not have: a real Dagster instance and real runs.

A source step yields one stream and fails another; a shared staging step reads both; a blocking check
fails on a materialized asset. The continuation runs exactly what depends on neither failure.
"""

import dagster as dg

from platform_assets.automation.continuation import (
    CONTINUES_TAG,
    continue_run,
    continue_until_done,
    held_back,
)


@dg.multi_asset(
    specs=[dg.AssetSpec("landed", skippable=True), dg.AssetSpec("broken", skippable=True)], can_subset=True
)
def source(context: dg.AssetExecutionContext):
    if dg.AssetKey("landed") in context.selected_asset_keys:
        yield dg.MaterializeResult(asset_key="landed")
    if dg.AssetKey("broken") in context.selected_asset_keys:
        raise dg.Failure("broken: bad.csv line 3: not valid UTF-8")


@dg.multi_asset(
    specs=[
        dg.AssetSpec("stg_landed", deps=["landed"], skippable=True),
        dg.AssetSpec("stg_broken", deps=["broken"], skippable=True),
        dg.AssetSpec("stg_checked", deps=["landed"], skippable=True),
    ],
    check_specs=[dg.AssetCheckSpec("must_pass", asset="stg_checked", blocking=True)],
    can_subset=True,
)
def staging(context: dg.AssetExecutionContext):
    for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
        yield dg.MaterializeResult(asset_key=key)
    if dg.AssetCheckKey(dg.AssetKey("stg_checked"), "must_pass") in context.selected_asset_check_keys:
        yield dg.AssetCheckResult(asset_key="stg_checked", check_name="must_pass", passed=False)


@dg.asset(deps=["stg_landed"])
def mart_landed() -> None: ...


@dg.asset(deps=["stg_landed", "stg_broken"])
def mart_both() -> None: ...


@dg.asset(deps=["stg_checked"])
def sync_checked() -> None: ...


def cycle_job() -> dg.JobDefinition:
    return DEFS.resolve_job_def("cycle")


DEFS = dg.Definitions(
    assets=[source, staging, mart_landed, mart_both, sync_checked],
    jobs=[dg.define_asset_job("cycle", selection=dg.AssetSelection.all())],
    executor=dg.in_process_executor,  # steps in this process: the test module is not importable by name
)


def materialized(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1000
    ).records
    return {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in records}


def test_the_continuation_runs_what_depends_on_no_failure(tmp_path):
    job = dg.reconstructable(cycle_job)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = dg.execute_job(job, instance)
        assert not first.success and materialized(instance, first.run_id) == {"landed"}

        plan = held_back(instance, first.run_id, DEFS)
        assert {k.to_user_string() for k in plan.failed} == {"broken"}
        assert {k.to_user_string() for k in plan.continuation} == {
            "stg_landed", "stg_checked", "mart_landed", "sync_checked",
        }  # fmt: skip
        assert {k.to_user_string(): {w.to_user_string() for w in v} for k, v in plan.blocked.items()} == {
            "stg_broken": {"broken"},
            "mart_both": {"broken"},
        }

        second = continue_run(instance, first.run_id, job, DEFS)
        assert second is not None and second.dagster_run.tags[CONTINUES_TAG] == first.run_id
        # The blocking check fails in the continuation: the staging step fails, so Dagster abandons
        # everything downstream of it; the next continuation runs what the check does not guard.
        assert not second.success
        assert materialized(instance, second.run_id) == {"stg_landed", "stg_checked"}
        again = held_back(instance, second.run_id, DEFS)
        assert {k.to_user_string() for k in again.failed} == {"stg_checked"}
        assert {k.to_user_string() for k in again.blocked} == {"sync_checked"}
        assert {k.to_user_string() for k in again.continuation} == {"mart_landed"}


def test_continuing_until_done_stops_when_a_run_succeeds_or_leaves_as_much_to_do(tmp_path):
    job = dg.reconstructable(cycle_job)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = dg.execute_job(job, instance)
        results = continue_until_done(instance, first.run_id, job, DEFS)
        assert [r.success for r in results] == [False, True]
        assert materialized(instance, results[-1].run_id) == {"mart_landed"}
        assert results[-1].dagster_run.tags[CONTINUES_TAG] == results[0].run_id
        assert continue_until_done(instance, results[-1].run_id, job, DEFS) == []
