"""Acceptance, with the real daemon: a record edited in the Salesforce sandbox reaches the warehouse's staging
model with no manual launch (change events -> salesforce_change_events sensor -> Meltano -> dbt staging).

It runs the latency benchmark's procedure once (benchmarks/bench_salesforce_change_latency.py: the real
platform definitions, sandboxes, code server and dagster-daemon after one warm-up cycle), on its own local
directory and free ports; the benchmark fails unless the staging model materializes after the edit and the
warehouse then holds the edited value. Slow (a full warm-up cycle, about 5 min on a quiet machine): marked
integration.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from platform_assets import environment

BENCHMARKS = environment.PROJECT_ROOT / "benchmarks"


@pytest.mark.integration
@pytest.mark.timeout(3600)  # warm-up cycle, then idle (a backlog of per-customer report runs), then the edit
def test_a_salesforce_edit_reaches_the_staging_model_without_a_manual_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from local_stack.browser.dagster_ui import free_port

    for variable in (
        "SALESFORCE_SANDBOX_PORT",
        "SALESFORCE_SUPPORT_SANDBOX_PORT",  # the sample's second org (orgs.yaml)
        "HIGHTOUCH_SANDBOX_PORT",
        "SALESFORCE_SANDBOX_PUBSUB_PORT",
    ):
        monkeypatch.setenv(variable, str(free_port()))
    for variable in (
        "PLATFORM_LANDING_DIR",
        "PLATFORM_APP_DB_URL",
        "PLATFORM_DUCKDB_PATH",
        "SALESFORCE_PUBSUB_URL",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PLATFORM_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    environment.current.cache_clear()
    try:
        import bench_salesforce_change_latency as bench

        latencies = bench.measure(1, tmp_path)
    finally:
        environment.current.cache_clear()
        sys.modules.pop("bench_salesforce_change_latency", None)
    assert len(latencies) == 1
