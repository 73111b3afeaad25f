"""The dead-run reaper judges a run by its process: alive, gone, a pid reused by another process, or on
another host (left to that host). Its sensor fails the run, frees the pool and alerts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from conftest import Platform, slot_holders, the_killed_run
from test_sync_crashes import LOCATION, SYNC, make_model

from local_stack.sandbox.salesforce import SandboxHandle, start_sandbox
from platform_assets.automation.alerts import AlertsResource
from platform_assets.automation.dead_runs import REAPED_TAG, WORKER_TAG, Worker, build_dead_run_sensor, reap

pytestmark = pytest.mark.integration


@pytest.fixture
def held_run(platform: Platform, tmp_path: Path) -> Iterator[tuple[dg.DagsterRun, Worker]]:
    """A real sync run, alive and holding the `warehouse` slot, waiting on a held Salesforce request."""
    with start_sandbox(db_path=tmp_path / "org.sqlite") as org:
        make_model(platform, rows=5)
        org.hold_requests("PUT /batches", seconds=600)
        process = platform.materialize("-f", LOCATION, "--select", SYNC, CRASH_SF_URL=org.url)
        try:
            wait_for_hold(org, process)
            run = the_killed_run(platform.instance)
            worker = Worker.parse(run.tags[WORKER_TAG])
            assert worker is not None and worker.pid == process.pid
            yield run, worker
        finally:
            process.kill()
            process.wait(timeout=30)
            org.reset_faults()


def wait_for_hold(org: SandboxHandle, process) -> None:
    import time

    deadline = time.monotonic() + 180
    while org.held_requests() == 0:
        assert process.poll() is None and time.monotonic() < deadline, "the run never reached the upload"
        time.sleep(0.05)


def test_only_a_run_whose_process_is_gone_is_reaped_and_the_sensor_alerts(
    platform: Platform, held_run: tuple[dg.DagsterRun, Worker], capfd: pytest.CaptureFixture[str]
):
    run, worker = held_run
    instance = platform.instance
    assert reap(instance, alerts=None) == []  # alive

    # Runs of another host are that host's to judge, whether or not a process has their pid here.
    for pid in (1, 2**22 + 7):  # pid 1 exists here; 2**22 + 7 is beyond pid_max
        instance.add_run_tags(run.run_id, {WORKER_TAG: Worker("another-host", pid, worker.started).tag()})
        assert reap(instance, alerts=None) == []
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED

    # Same pid, another start time: another process now has the pid, ours is gone.
    reused = Worker(worker.host, worker.pid, worker.started - 3600)
    instance.add_run_tags(run.run_id, {WORKER_TAG: reused.tag()})
    sensor = build_dead_run_sensor(dg.DefaultSensorStatus.RUNNING)
    with dg.build_sensor_context(instance=instance, resources={"alerts": AlertsResource()}) as context:
        result = sensor(context)

    assert run.run_id in str(result.skip_message)
    failed = instance.get_run_by_id(run.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE and failed.tags[REAPED_TAG] == "reaped"
    assert slot_holders(instance) == set()
    alert = [line for line in capfd.readouterr().err.splitlines() if "ALERT" in line]  # the log channel
    assert len(alert) == 1 and "Run died" in alert[0] and run.run_id in alert[0]
    assert reap(instance, alerts=None) == []  # once
