"""Each sandbox becomes unreachable in the middle of a sync (its process is killed: connections are reset,
then refused) and comes back later; the run in flight fails, and the next run delivers every record once.

The Salesforce sandbox keeps its org and Bulk jobs in SQLite and resumes the jobs at restart, as Salesforce
goes on processing a job while the platform cannot reach it; the Hightouch sandbox keeps its deliveries.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pytest
from conftest import Platform, slot_holders, succeed
from test_sync_crashes import LOCATION, ROWS, SYNC, make_model, sync_state

from local_stack.sandbox.hightouch import DEFAULT_SYNCS_DIR
from local_stack.sandbox.salesforce import admin
from platform_assets.components.hightouch_syncs import HightouchSyncsComponent
from platform_assets.environment import (
    SANDBOX_HIGHTOUCH_API_KEY,
    SANDBOX_SALESFORCE_CLIENT_ID,
    SANDBOX_SALESFORCE_CLIENT_SECRET,
)
from platform_assets.integrations.salesforce.client import SalesforceClient, SalesforceCredentials
from platform_assets.warehouse import connect_duckdb

pytestmark = pytest.mark.integration

TRIAL = "trial-nurture-braze"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


class Server:
    """A sandbox in its own process, on a fixed port, that can be killed and started again."""

    def __init__(self, command: Sequence[str], health: str, log: Path) -> None:
        self.command, self.health, self.log = list(command), health, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not answers(self.health):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{self.health} did not answer: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def cut(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.cut()


@pytest.fixture
def salesforce(platform: Platform) -> Iterator[tuple[Server, str]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "local_stack.sandbox.salesforce", "--port", str(port)]
    command += ["--db", str(platform.local_dir / "org.sqlite")]
    server = Server(command, f"{url}/__sandbox/health", platform.local_dir / "salesforce.log")
    server.start()
    yield server, url
    server.stop()


def test_salesforce_cut_while_a_job_is_processed_then_the_next_run_sends_nothing_twice(
    platform: Platform, salesforce: tuple[Server, str]
):
    server, url = salesforce
    make_model(platform)
    admin(url, "faults", {"slow_job_seconds": 3.0})
    env = {"CRASH_SF_URL": url, "CRASH_BATCH_SIZE": str(ROWS)}
    running = platform.materialize("-f", LOCATION, "--select", SYNC, **env)
    deadline = time.monotonic() + 180
    while admin(url, "counters")["endpoints"].get("ingest_state", 0) < 1:  # the job is Salesforce's now
        assert running.poll() is None and time.monotonic() < deadline, platform.log_tail()
        time.sleep(0.05)
    server.cut()

    assert running.wait(timeout=300) != 0, "the run must fail while Salesforce is unreachable"
    assert "SalesforceUnavailable" in (platform.local_dir / "materialize.log").read_text()
    assert slot_holders(platform.instance) == set()  # a failed run gives its slot back itself
    server.start()  # the org resumes the job it had
    succeed(platform.materialize("-f", LOCATION, "--select", SYNC, **env), platform)

    client = SalesforceClient(
        SalesforceCredentials(url, SANDBOX_SALESFORCE_CLIENT_ID, SANDBOX_SALESFORCE_CLIENT_SECRET)
    )
    leads = {row["Id"] for row in client.query("SELECT Id FROM Lead")}
    state = sync_state(platform)
    assert len(leads) == ROWS and len(state) == ROWS and set(state.values()) == leads
    materialization = platform.instance.get_latest_materialization_event(dg.AssetKey(SYNC.split("/")))
    assert materialization.asset_materialization.metadata["recovered_from_earlier_run"].value == ROWS


def hightouch_get(url: str, path: str) -> dict:
    request = urllib.request.Request(
        f"{url}{path}", headers={"Authorization": f"Bearer {SANDBOX_HIGHTOUCH_API_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def hightouch_post(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {SANDBOX_HIGHTOUCH_API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def hightouch(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, str]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "local_stack.sandbox.hightouch",
        "--port",
        str(port),
        "--step-seconds",
        "0.05",
    ]
    command += ["--state-db", str(platform.local_dir / "hightouch.sqlite3")]
    command += [
        "--warehouse",
        str(platform.local_dir / "warehouse.duckdb"),
        "--syncs-dir",
        str(DEFAULT_SYNCS_DIR),
    ]
    server = Server(command, f"{url}/health", platform.local_dir / "hightouch.log")
    server.start()
    monkeypatch.setenv("HIGHTOUCH_SANDBOX_PORT", str(port))
    yield server, url
    server.stop()


def test_hightouch_cut_during_a_run_then_the_next_run_delivers_each_row_once(
    platform: Platform, hightouch: tuple[Server, str]
):
    users = 7
    connection = connect_duckdb(platform.local_dir / "warehouse.duckdb")
    try:
        connection.execute("CREATE SCHEMA marketing")
        connection.execute(
            "CREATE TABLE marketing.mkt_audience_trial_nurture AS SELECT 'user' || i || '@example.com' "
            "AS email, 'User ' || i AS first_name, i AS usage_score FROM range(?) t(i)",
            [users],
        )
    finally:
        connection.close()
    server, url = hightouch
    defs = dg.build_defs_for_component(
        HightouchSyncsComponent(
            syncs_dir=str(DEFAULT_SYNCS_DIR),
            poll_interval_seconds=0.05,
            backoff_initial_seconds=0.01,
            max_attempts=2,
            retry=None,
        )
    )
    (asset,) = [a for a in defs.assets if a.key == dg.AssetKey(["hightouch", "trial_nurture_braze"])]
    hightouch_post(url, "/__sandbox/faults", {"sync": TRIAL, "mode": "stall"})
    outcome: list[bool] = []
    first = threading.Thread(
        target=lambda: outcome.append(
            dg.materialize(
                [asset], resources=defs.resources, instance=platform.instance, raise_on_error=False
            ).success
        )
    )
    first.start()
    sync_id = hightouch_get(url, f"/api/v1/syncs?slug={TRIAL}")["data"][0]["id"]
    deadline = time.monotonic() + 120
    while not any(
        r["status"] == "processing" for r in hightouch_get(url, f"/api/v1/syncs/{sync_id}/runs")["data"]
    ):
        assert time.monotonic() < deadline, "the Hightouch run never started processing"
        time.sleep(0.05)
    server.cut()
    first.join(timeout=300)
    assert outcome == [False], "the run must fail while Hightouch is unreachable"

    server.start()
    second = dg.materialize([asset], resources=defs.resources, instance=platform.instance)
    assert second.success
    deliveries = hightouch_get(url, f"/__sandbox/deliveries?sync={TRIAL}")["data"]
    delivered = [d["record_key"] for d in deliveries]
    assert sorted(delivered) == sorted(f"user{i}@example.com" for i in range(users))
