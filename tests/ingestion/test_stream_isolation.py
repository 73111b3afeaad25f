"""One bad landing file fails only its stream; the domains that do not read it still run in the cycle.

The real platform definitions and its cycle job, real meltano/tap-landing/target-duckdb-bulk and dbt-core on a
local DuckDB, a real Dagster instance. The selection is every asset fed by the landing source alone (no
Salesforce or Hightouch sandbox is needed); the bad file holds a 10 MB field on line 3.
"""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pytest

from local_stack.sample_company import generate
from platform_assets.automation.continuation import CONTINUES_TAG, continue_run, platform_cycle_job
from platform_assets.definitions import defs as platform_defs
from platform_assets.definitions import platform_cycle
from platform_assets.warehouse import connect_duckdb

pytestmark = pytest.mark.integration
BAD_STREAM = "ad_spend"
BAD = dg.AssetKey(["raw", "landing", BAD_STREAM])
FIELD = 10 * 1024 * 1024


def landing_only(defs: dg.Definitions) -> list[dg.AssetKey]:
    """Every asset of the cycle fed by the landing source alone, before activation (syncs need the
    sandboxes)."""
    landing = dg.AssetSelection.groups("ingestion_landing")
    others = dg.AssetSelection.tag("layer", "ingestion") - landing
    in_cycle = landing.downstream() & platform_cycle.selection
    selection = in_cycle - others.downstream() - dg.AssetSelection.tag("layer", "activation")
    return sorted(selection.resolve(defs.resolve_asset_graph()), key=lambda key: key.to_user_string())


def materialized(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
    ).records
    return {r.event_log_entry.dagster_event.asset_key for r in records}


def raw_lines(env, stream: str) -> Counter:
    connection = connect_duckdb(env.duckdb_path, read_only=True)
    try:
        rows = connection.execute(f"SELECT _source_file, _source_line FROM raw_landing.{stream}").fetchall()
    finally:
        connection.close()
    return Counter(rows)


def test_a_10mb_field_fails_only_its_stream_and_the_other_domains_run(meltano_plugins, local_platform):
    generate(local_platform.landing_dir, scale=0.02, seed=5)
    bad_file = local_platform.landing_dir / BAD_STREAM / "part-00001.csv"
    lines = bad_file.read_text().splitlines(keepends=True)
    good_line_3 = lines[2]
    fields = good_line_3.rstrip("\n").split(",")
    lines[2] = ",".join([fields[0], '"' + "x" * FIELD + '"', *fields[2:]]) + "\n"  # campaign_id, 10 MB
    bad_file.write_text("".join(lines))

    defs = platform_defs()
    selection = landing_only(defs)
    graph = defs.resolve_asset_graph()
    blocked = set(dg.AssetSelection.assets(BAD).downstream().resolve(graph)) & set(selection)
    raw = {key for key in selection if key.path[0] == "raw"}
    assert len(raw) == 9 and len(blocked) > 1 and len(set(selection) - raw - blocked) > 1

    job = dg.reconstructable(platform_cycle_job)
    with dg.instance_for_test() as instance:
        first = dg.execute_job(job, instance, asset_selection=selection)
        assert not first.success, "the run must fail, so alerts fire"
        [failure] = [e for e in first.all_events if e.is_step_failure]
        message = failure.step_failure_data.error.message
        assert f"raw/landing/{BAD_STREAM}: {bad_file} line 3: the record is longer than" in message
        assert materialized(instance, first.run_id) == raw - {BAD}, "the other streams land"

        second = continue_run(instance, first.run_id, job, defs)
        assert second is not None and second.success
        assert second.dagster_run.tags[CONTINUES_TAG] == first.run_id
        # Every domain model that does not read the failed stream ran in the same cycle; none that does.
        assert materialized(instance, second.run_id) == set(selection) - raw - blocked

        # Fix the file and load the stream again: every line of the file is in raw exactly once.
        lines[2] = good_line_3
        bad_file.write_text("".join(lines))
        assert dg.execute_job(job, instance, asset_selection=[BAD]).success
    loaded = raw_lines(local_platform, BAD_STREAM)
    assert max(loaded.values()) == 1, "a line was loaded twice"
    in_file = {(f"{BAD_STREAM}/{bad_file.name}", n) for n in range(2, len(lines) + 1)}
    assert {key for key in loaded if key[0] == f"{BAD_STREAM}/{bad_file.name}"} == in_file
