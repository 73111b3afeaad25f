"""The crash suite's harness: real Dagster runs in processes SIGKILLed at a phase, on a local instance
(deploy/local/dagster.yaml: the `warehouse` pool has one slot), then the dead-run reaper and the next run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).parent / "dagster"
POOL = "warehouse"


@dataclass
class Platform:
    """A local platform directory with its own Dagster instance; `env` is what its processes get."""

    local_dir: Path
    env: dict[str, str]

    @property
    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])

    def materialize(self, *args: str, **env: str) -> subprocess.Popen:
        """`dagster asset materialize <args>` in its own process group, as a cycle or the UI would run it."""
        log = open(self.local_dir / "materialize.log", "ab")  # noqa: SIM115 - the child owns it
        return subprocess.Popen(
            [str(DAGSTER), "asset", "materialize", *args],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self) -> str:
        return (self.local_dir / "materialize.log").read_text()[-3000:]


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    local = tmp_path / "local"
    home = local / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "PLATFORM_ENV": "local",
        "PLATFORM_LOCAL_DIR": str(local),
        "DAGSTER_HOME": str(home),
        "PYTHONUNBUFFERED": "1",
    }
    for variable in ("PLATFORM_DUCKDB_PATH", "PLATFORM_LANDING_DIR", "PLATFORM_APP_DB_URL"):
        env.pop(variable, None)
        monkeypatch.delenv(variable, raising=False)
    for variable in ("PLATFORM_ENV", "PLATFORM_LOCAL_DIR", "DAGSTER_HOME"):
        monkeypatch.setenv(variable, env[variable])
    from platform_assets import environment

    environment.current.cache_clear()
    yield Platform(local, env)
    environment.current.cache_clear()


def kill_when(
    process: subprocess.Popen, reached: Callable[[], bool], what: str, seconds: float = 180
) -> None:
    """SIGKILL the process's whole group as soon as `reached()` says it got to the phase."""
    deadline = time.monotonic() + seconds
    try:
        while not reached():
            assert process.poll() is None, f"the run ended ({process.returncode}) before {what}"
            assert time.monotonic() < deadline, f"the run did not reach {what} within {seconds:.0f}s"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)


def descendant_running(process: subprocess.Popen, name: str) -> bool:
    """Whether a program called `name` (e.g. target-duckdb, dbt) runs under `process`."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for child in children:
        try:
            if any(Path(part).name == name for part in child.cmdline()[:2]):
                return True
        except psutil.Error:
            continue
    return False


def logged(platform: Platform, text: str, times: int = 1) -> bool:
    """Whether the in-progress run logged a message containing `text` at least `times` times (the
    platform forwards Meltano's and dbt's lines to the run's log)."""
    instance = platform.instance
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    count = 0
    for run in runs:
        count += sum(text in (entry.user_message or "") for entry in instance.all_logs(run.run_id))
    return count >= times


def slot_holders(instance: dg.DagsterInstance, pool: str = POOL) -> set[str]:
    info = instance.event_log_storage.get_concurrency_info(pool)
    return {slot.run_id for slot in info.claimed_slots} | {step.run_id for step in info.pending_steps}


def the_killed_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    (run,) = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    return run


def reap_and_check(instance: dg.DagsterInstance) -> None:
    """The killed run is STARTED holding the pool; the reaper fails it and frees the pool."""
    from platform_assets.automation.dead_runs import reap

    killed = the_killed_run(instance)
    assert killed.run_id in slot_holders(instance), "the killed run did not hold the pool slot"
    assert reap(instance, alerts=None) == [killed.run_id]
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    assert slot_holders(instance) == set()


def succeed(process: subprocess.Popen, platform: Platform, seconds: float = 300) -> None:
    assert process.wait(timeout=seconds) == 0, platform.log_tail()
