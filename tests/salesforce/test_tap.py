"""tap-salesforce-bulk, run standalone in its own virtualenv against the sandbox: full, then incremental."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sf_helpers import MANAGER_ID, credentials_for, fast_client, leads

from local_stack.sandbox.salesforce import SandboxHandle
from platform_assets.environment import MELTANO_PROJECT_DIR

pytestmark = pytest.mark.integration
TAP_DIR = MELTANO_PROJECT_DIR / "extractors" / "tap-salesforce-bulk"


@pytest.fixture(scope="module")
def tap_executable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tap from TAP_SALESFORCE_BULK_EXECUTABLE, Meltano's plugin venv, or a fresh uv venv."""
    candidates = [
        os.environ.get("TAP_SALESFORCE_BULK_EXECUTABLE", ""),
        str(MELTANO_PROJECT_DIR / ".meltano/extractors/tap-salesforce-bulk/venv/bin/tap-salesforce-bulk"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    venv = tmp_path_factory.mktemp("tap-venv")
    try:
        subprocess.run([uv, "venv", "-q", str(venv), "--python", sys.executable], check=True, timeout=120)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(venv / "bin/python"), "-e", str(TAP_DIR)],
            check=True,
            timeout=600,
            capture_output=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot install tap-salesforce-bulk into a venv (PyPI unreachable?): {exc}")
    return venv / "bin" / "tap-salesforce-bulk"


def run_tap(executable: Path, config: Path, state: dict | None, tmp_path: Path) -> tuple[list[dict], dict]:
    args = [str(executable), "--config", str(config)]
    if state is not None:
        state_file = tmp_path / "state.json"
        state_file.write_text(json.dumps(state))
        args += ["--state", str(state_file)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    records = [m for m in messages if m["type"] == "RECORD"]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    return records, states[-1]


def test_full_then_incremental_extraction(
    tap_executable: Path, seeded: SandboxHandle, tmp_path: Path
) -> None:
    client = fast_client(credentials_for(seeded))
    lead_ids = [r["sf__Id"] for r in client.ingest("Lead", "insert", leads(5)).successful]
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "login_url": seeded.url,
                "client_id": seeded.client_id,
                "client_secret": seeded.client_secret,
                "start_date": "2020-01-01T00:00:00Z",
                "poll_interval": 0.05,
                "page_size": 2,
                "streams": [
                    {"name": n.lower(), "object": n, "fields": "*"}
                    for n in ("User", "Account", "Lead", "Contact", "Opportunity", "Task", "Case")
                ],
            }
        )
    )

    records, state = run_tap(tap_executable, config, None, tmp_path)
    by_stream: dict[str, list[dict]] = {}
    for message in records:
        by_stream.setdefault(message["stream"], []).append(message["record"])
    assert {k: len(v) for k, v in by_stream.items()} == {"account": 3, "lead": 5, "user": 1}
    account = by_stream["account"][0]
    assert account["OwnerId"] == MANAGER_ID and account["IsDeleted"] is False
    assert by_stream["lead"][0]["Product_Usage_Score__c"] == 0.0
    assert state["bookmarks"]["lead"]["replication_key"] == "SystemModstamp"

    client.ingest(
        "Lead",
        "upsert",
        [{"Signup_Id__c": "sgn_000002", "Title": "Head of Data"}],
        external_id_field="Signup_Id__c",
    )
    client.ingest("Lead", "delete", [{"Id": lead_ids[4]}])
    records, _ = run_tap(tap_executable, config, state, tmp_path)
    changed = {m["record"]["Id"]: m["record"] for m in records}
    assert set(changed) == {lead_ids[2], lead_ids[4]}
    assert changed[lead_ids[2]]["Title"] == "Head of Data" and changed[lead_ids[4]]["IsDeleted"] is True


def test_an_object_the_org_lacks_fails_discovery_naming_the_stream(
    tap_executable: Path, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "login_url": sandbox.url,
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
                "streams": [{"name": "renewals", "object": "Renewal__c"}],
            }
        )
    )
    done = subprocess.run(
        [str(tap_executable), "--config", str(config), "--discover"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "streams[name=renewals] (object Renewal__c): describe failed" in done.stderr
    assert "NOT_FOUND" in done.stderr
