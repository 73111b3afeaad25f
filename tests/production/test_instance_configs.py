"""The Dagster instance configs in deploy/: valid against Dagster's schema, and the pools really limit."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_postgres import PostgresRunStorage
from production_support import (
    BIN,
    DEPLOY_DIR,
    ProcessGroup,
    base_env,
    instance_home,
    requires_postgres,
    throwaway_postgres_database,
    wait_until,
)

from platform_assets.instance_storage import PoolSafeSqliteEventLogStorage

HERE = Path(__file__).resolve().parent


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def clean_dagster_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("DAGSTER_PG_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_local_instance_config_loads_with_queue_pools_automation_and_freshness(
    tmp_path: Path, clean_dagster_env: pytest.MonkeyPatch
) -> None:
    home = instance_home(tmp_path / "home", "local")
    clean_dagster_env.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
        assert instance.freshness_enabled and instance.auto_materialize_use_sensors
        assert isinstance(instance.event_log_storage, PoolSafeSqliteEventLogStorage)
        assert Path(instance.event_log_storage._base_dir) == home / "history" / "runs"
    config = load_yaml(home / "dagster.yaml")
    assert config["concurrency"]["pools"]["default_limit"] == 1, "warehouse must default to one writer"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] <= 4
    assert config["run_monitoring"]["enabled"] is True
    assert config["auto_materialize"] == {**config["auto_materialize"], "enabled": True, "use_sensors": True}
    assert config["freshness"] == {"enabled": True}
    assert config["telemetry"] == {"enabled": False}


def test_misspelled_instance_key_is_rejected_by_the_schema(
    tmp_path: Path, clean_dagster_env: pytest.MonkeyPatch
) -> None:
    """The loading tests above are only meaningful if Dagster checks the file against its schema."""
    home = instance_home(tmp_path / "home", "local")
    config = load_yaml(home / "dagster.yaml")
    config["freshness"] = {"enabeld": True}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    clean_dagster_env.setenv("DAGSTER_HOME", str(home))
    with pytest.raises(dg.DagsterInvalidConfigError, match="enabeld"):
        dg.DagsterInstance.get()


def test_prod_instance_config_names_missing_postgres_variables(
    tmp_path: Path, clean_dagster_env: pytest.MonkeyPatch
) -> None:
    home = instance_home(tmp_path / "home", "prod")
    clean_dagster_env.setenv("DAGSTER_HOME", str(home))
    with pytest.raises(Exception, match="DAGSTER_PG_"):
        dg.DagsterInstance.get()


def test_prod_instance_config_takes_every_connection_setting_from_the_environment() -> None:
    database = load_yaml(DEPLOY_DIR / "prod" / "dagster.yaml")["storage"]["postgres"]["postgres_db"]
    assert database == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
    }


@pytest.mark.postgres
@requires_postgres
def test_prod_instance_config_loads_on_postgres_with_queue_retries_and_automation(
    tmp_path: Path, clean_dagster_env: pytest.MonkeyPatch
) -> None:
    home = instance_home(tmp_path / "home", "prod")
    clean_dagster_env.setenv("DAGSTER_HOME", str(home))
    with throwaway_postgres_database() as pg_settings:
        for key, value in pg_settings.items():
            clean_dagster_env.setenv(key, value)
        with dg.DagsterInstance.get() as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
            assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
            assert instance.auto_materialize_enabled and instance.auto_materialize_use_sensors
            assert instance.run_monitoring_enabled and instance.freshness_enabled


def test_pool_limits_file_declares_warehouse_and_salesforce_api_for_each_environment() -> None:
    sys.path.insert(0, str(DEPLOY_DIR))
    try:
        import apply_pools
    finally:
        sys.path.remove(str(DEPLOY_DIR))
    assert apply_pools.pool_limits("local") == {"warehouse": 1, "salesforce_api": 2}
    prod = apply_pools.pool_limits("prod")
    assert prod["warehouse"] > 1 and prod["salesforce_api"] == 2
    with pytest.raises(SystemExit, match="no section 'staging'"):
        apply_pools.pool_limits("staging")


CLAIM_ROUNDS = 40


def claim_at_the_barrier(home: str, label: str, barrier, claims) -> None:
    """A worker process: each round, claim the `warehouse` slot at the same instant as its partner."""
    os.environ["DAGSTER_HOME"] = home
    storage = dg.DagsterInstance.get().event_log_storage
    for round_no in range(CLAIM_ROUNDS):
        run_id = f"run-{label}-{round_no}"
        barrier.wait()
        claims.put((round_no, storage.claim_concurrency_slot("warehouse", run_id, "step").is_claimed))
        barrier.wait()
        storage.free_concurrency_slots_for_run(run_id)
        barrier.wait()


def test_simultaneous_claims_of_the_one_warehouse_slot_never_both_succeed(
    tmp_path: Path, clean_dagster_env: pytest.MonkeyPatch
) -> None:
    """Dagster's SQLite storage alone gives the one slot to both claimers now and then; the local
    instance's storage serializes claims (platform_assets/instance_storage.py)."""
    home = instance_home(tmp_path / "home", "local")
    clean_dagster_env.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        instance.event_log_storage.set_concurrency_slots("warehouse", 1)
    context = multiprocessing.get_context("fork")
    barrier, claims = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=claim_at_the_barrier, args=(str(home), label, barrier, claims))
        for label in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    results = [claims.get(timeout=60) for _ in range(2 * CLAIM_ROUNDS)]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    claimed = {round_no: 0 for round_no in range(CLAIM_ROUNDS)}
    for round_no, is_claimed in results:
        claimed[round_no] += is_claimed
    assert [r for r, n in claimed.items() if n > 1] == [], "both processes got the one slot"
    assert all(n == 1 for n in claimed.values()), claimed


def overlap(first: dict[str, float], second: dict[str, float]) -> bool:
    return first["start"] < second["end"] and second["start"] < first["end"]


def phase_timeline(timeline: Path, phase: int, probes: ProcessGroup) -> list[dict[str, float]]:
    (timeline / f"go.{phase}").touch()

    def both_recorded() -> bool:
        for name, probe in probes.processes.items():
            if probe.poll() not in (None, 0):
                raise AssertionError(f"{name} failed:\n{probes.log_tail(name)}")
        return all((timeline / f"{label}.{phase}.json").exists() for label in ("a", "b"))

    wait_until(both_recorded, 120, f"both runs of phase {phase}", interval=0.1)
    return [json.loads((timeline / f"{label}.{phase}.json").read_text()) for label in ("a", "b")]


@pytest.mark.integration
def test_two_runs_writing_in_the_warehouse_pool_never_overlap_on_the_local_instance(
    tmp_path: Path, clean_dagster_env: pytest.MonkeyPatch, process_group: ProcessGroup
) -> None:
    home = instance_home(tmp_path / "home", "local")
    clean_dagster_env.setenv("DAGSTER_HOME", str(home))
    dg.DagsterInstance.get().dispose()  # create the SQLite schema once, before two processes race to
    timeline = tmp_path / "timeline"
    timeline.mkdir()
    env = base_env(DAGSTER_HOME=str(home))
    for label, partner in (("a", "b"), ("b", "a")):
        process_group.start(
            f"probe_{label}",
            [sys.executable, HERE / "pool_probe.py", label, partner, timeline, "warehouse", "salesforce_api"],
            env,
            cwd=HERE,
        )
    first, second = phase_timeline(timeline, 0, process_group)
    assert not overlap(first, second), f"warehouse writers overlapped: {first} {second}"

    # Control: after deploy/pools.yaml is applied, salesforce_api allows two at once and the same two
    # runs do overlap -- so the check above would catch a pool that did not limit.
    applied = subprocess.run(
        [BIN / "python", DEPLOY_DIR / "apply_pools.py", "local"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    first, second = phase_timeline(timeline, 1, process_group)
    assert overlap(first, second), f"salesforce_api (limit 2) runs did not overlap: {first} {second}"
