"""End to end with the real processes: a code server (`dagster api grpc`) and `dagster-daemon` on a temporary
DAGSTER_HOME. Dropping a file must, without any manual launch, materialize the chain down to the sync (each
once), and a freshness failure must reach the alert webhook."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.environment import PROJECT_ROOT

pytestmark = pytest.mark.integration

CHAIN = [["raw", "landing", "drops"], ["finance", "drop_totals"], ["salesforce", "drop_sync"]]
BIN = Path(sys.executable).parent
CHAIN_TIMEOUT = 150
FRESHNESS_TIMEOUT = 150

INSTANCE_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config: {dequeue_interval_seconds: 1}
auto_materialize: {enabled: true, use_sensors: true}
freshness: {enabled: true}
sensors: {use_threads: true, num_workers: 4}
telemetry: {enabled: false}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(what: str, predicate: Callable[[], object], timeout: float, logs: list[Path]) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def running_platform(tmp_path: Path, webhook) -> Iterator[tuple[dg.DagsterInstance, Path, list[Path]]]:
    home, local = tmp_path / "dagster_home", tmp_path / "local"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    port = _free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        textwrap.dedent(f"""\
        load_from:
          - grpc_server: {{host: 127.0.0.1, port: {port}, location_name: automation_e2e}}
        """)
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLATFORM_ENV": "local",
        "PLATFORM_LOCAL_DIR": str(local),
        "PLATFORM_ALERT_SLACK_WEBHOOK_URL": webhook.url,
        "FRESHNESS_DAEMON_INTERVAL_SECONDS": "3",
    }
    for variable in ("PLATFORM_LANDING_DIR", "PLATFORM_APP_DB_URL", "PLATFORM_DUCKDB_PATH"):
        env.pop(variable, None)
    logs = [tmp_path / "code_server.log", tmp_path / "daemon.log"]
    code_server = subprocess.Popen(
        [
            str(BIN / "dagster"),
            "api",
            "grpc",
            "-f",
            str(Path(__file__).with_name("e2e_defs.py")),
            "-d",
            str(PROJECT_ROOT),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=logs[0].open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    daemon = None
    try:
        _wait_for("the code server", lambda: _port_open(port) or code_server.poll() is not None, 90, logs)
        assert code_server.poll() is None, logs[0].read_text()
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=tmp_path,
            env=env,
            stdout=logs[1].open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance, local / "landing", logs
    finally:
        for process in (daemon, code_server):
            if process is not None:
                _stop(process)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _materializations(instance: dg.DagsterInstance, path: list[str]) -> int:
    return len(instance.fetch_materializations(dg.AssetKey(path), limit=100).records)


def test_file_drop_materializes_the_chain_once_and_freshness_failure_alerts(
    running_platform, webhook
) -> None:
    instance, landing, logs = running_platform
    # Start the freshness clock of the 1-minute mart now; the daemon must flag it FAIL about a minute later.
    instance.report_runless_asset_event(dg.AssetMaterialization(["marketing", "short_lived_mart"]))
    (landing / "drops").mkdir(parents=True)
    (landing / "drops" / "2026-03-01.csv").write_text("id,amount\n1,10.00\n2,12.50\n")
    dropped = time.monotonic()

    _wait_for(
        "the chain down to the sync", lambda: _materializations(instance, CHAIN[-1]), CHAIN_TIMEOUT, logs
    )
    latency = time.monotonic() - dropped
    print(f"file drop -> salesforce/drop_sync materialized in {latency:.1f}s")
    time.sleep(6)  # a few more sensor ticks: nothing may be launched twice
    assert [_materializations(instance, key) for key in CHAIN] == [1, 1, 1]
    triggered = instance.get_run_records(dg.RunsFilter(tags={"platform/trigger": "landing_file_drop"}))
    assert len(triggered) == 1, "one file drop, one ingestion run"

    def alerted() -> bool:
        return any(
            "marketing/short_lived_mart" in m["text"] and "Freshness failed" in m["text"]
            for m in webhook.messages
        )

    _wait_for("the freshness alert", alerted, FRESHNESS_TIMEOUT, logs)
