"""The sandbox as the lead's tasks.py starts it: `python -m local_stack.sandbox.hightouch ...`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from platform_assets import environment
from platform_assets.integrations.hightouch.client import HightouchClient


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.integration
def test_sandbox_command_serves_the_api_until_terminated(local_env, warehouse, tmp_path):
    port = free_port()
    command = [
        sys.executable, "-m", "local_stack.sandbox.hightouch", "--port", str(port),
        "--state-db", str(tmp_path / "state" / "hightouch.sqlite3"),
        "--warehouse", str(local_env.duckdb_path), "--step-seconds", "0.01",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=environment.PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).json()["status"] == "ok":
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, "the sandbox exited before answering its health check"
            assert time.monotonic() < deadline, "the sandbox did not answer /health within 60 s"
            time.sleep(0.1)
        client = HightouchClient(f"http://127.0.0.1:{port}/api/v1", environment.SANDBOX_HIGHTOUCH_API_KEY)
        sync_id = client.find_sync(slug="trial-nurture-braze")["id"]
        run = client.wait_for_run(sync_id, client.trigger_sync(sync_id=sync_id), poll_interval_seconds=0.05)
        assert run.status == "success" and run.planned.added == 5
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"listening on http://127.0.0.1:{port}/api/v1" in output


@pytest.mark.integration
def test_sandbox_command_refuses_a_broken_sync_folder(local_env, tmp_path):
    broken = tmp_path / "syncs"
    broken.mkdir()
    (broken / "bad.yaml").write_text("model: mkt_x\n")
    completed = subprocess.run(
        [sys.executable, "-m", "local_stack.sandbox.hightouch", "--port", str(free_port()),
         "--syncs-dir", str(broken), "--state-db", str(tmp_path / "s.sqlite3"),
         "--warehouse", str(tmp_path / "w")],
        cwd=environment.PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "bad.yaml" in completed.stderr and "cannot start" in completed.stderr
