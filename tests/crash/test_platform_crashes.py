"""SIGKILL the platform's own runs during ingestion (a Meltano load) and during a dbt domain; after the
dead-run reaper, the next run completes and every row is there exactly once."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT, Platform, descendant_running, kill_when, logged, reap_and_check, succeed

from local_stack.sample_company.landing import generate
from platform_assets.warehouse import connect_duckdb

pytestmark = pytest.mark.integration

DEFINITIONS = ("-m", "platform_assets.definitions")
LANDING = "key:raw/landing/*"
LANDING_AND_STAGING = f"{LANDING} or key:staging/stg_landing__*"


def primary_keys() -> dict[str, list[str]]:
    meltano = yaml.safe_load((ROOT / "meltano" / "meltano.yml").read_text())
    (tap,) = [p for p in meltano["plugins"]["extractors"] if p["name"] == "tap-landing"]
    return {stream["name"]: stream["primary_keys"] for stream in tap["config"]["streams"]}


def counts(platform: Platform, table: str, keys: list[str]) -> tuple[int, int]:
    """(rows, distinct keys) of a warehouse table."""
    connection = connect_duckdb(platform.local_dir / "warehouse.duckdb")
    try:
        distinct = ", ".join(f'"{key}"' for key in keys)
        return connection.execute(f"SELECT count(*), count(DISTINCT ({distinct})) FROM {table}").fetchone()
    finally:
        connection.close()


def test_runs_killed_in_ingestion_and_in_a_dbt_domain_are_finished_exactly(platform: Platform):
    landed = generate(platform.local_dir / "landing", scale=0.2, seed=7)

    loading = platform.materialize(*DEFINITIONS, "--select", LANDING)
    # Killed once the loader has written a stream and goes on with the next one.
    kill_when(
        loading, lambda: logged(platform, "[target-duckdb-bulk] INFO Loaded batch", times=2), "a Meltano load"
    )
    reap_and_check(platform.instance)

    building = platform.materialize(*DEFINITIONS, "--select", LANDING_AND_STAGING)
    kill_when(building, lambda: descendant_running(building, "dbt"), "a dbt build")
    reap_and_check(platform.instance)

    succeed(platform.materialize(*DEFINITIONS, "--select", LANDING_AND_STAGING), platform)

    keys = primary_keys()
    for stream, rows in landed.items():
        raw_rows, raw_keys = counts(platform, f"raw_landing.{stream}", keys[stream])
        # Exactly once: a stream the loader committed before the kill, whose Meltano state was not yet
        # saved, is extracted again, and the loader upserts it on the lineage key (docs/ingestion.md).
        assert (raw_rows, raw_keys) == (rows, rows), f"raw_landing.{stream}: {raw_rows} rows, {raw_keys} keys"
        assert counts(platform, f"staging.stg_landing__{stream}", keys[stream]) == (rows, rows)
