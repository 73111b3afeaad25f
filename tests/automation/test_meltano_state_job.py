"""The meltano_state job against the real `meltano state` CLI, on this test's own PLATFORM_LOCAL_DIR."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from platform_assets.automation.meltano_state import MeltanoStateConfig, carry_out, meltano_state_job

pytestmark = pytest.mark.integration

STATE_ID = "local:tap-landing-to-target-duckdb-bulk"


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def _error(result: dg.ExecuteInProcessResult) -> str:
    error = result.get_step_failure_events()[0].step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return error.message


def _run(**config: object) -> dg.ExecuteInProcessResult:
    return meltano_state_job.execute_in_process(
        run_config={"ops": {"meltano_state_action": {"config": config}}}, raise_on_error=False
    )


def test_backfill_state_operations_on_a_source(local_platform) -> None:
    document = {"singer_state": {"bookmarks": {"invoices": {"v": 1}, "campaigns": {"v": 2}}}}
    log = _Log()
    assert _run(state_id=STATE_ID, action="set", state=json.dumps(document)).success  # through the job

    cleared = carry_out(MeltanoStateConfig(source="landing", action="clear", streams=["invoices"]), log)
    assert cleared == {"state_id": STATE_ID, "cleared_streams": ["invoices"]}
    got = carry_out(MeltanoStateConfig(source="landing", action="get"), log)
    assert got["state"]["singer_state"]["bookmarks"] == {"campaigns": {"v": 2}}, "other streams keep theirs"

    assert carry_out(MeltanoStateConfig(source="landing", action="clear"), log)["cleared"]
    assert carry_out(MeltanoStateConfig(source="landing", action="list"), log) == {"state_ids": []}
    assert any("extracts everything" in line for line in log.lines)


def test_bad_launchpad_config_fails_saying_what_to_pass(local_platform) -> None:
    bad_json = _run(state_id=STATE_ID, action="set", state="{not json")
    assert "config `state` is not JSON" in _error(bad_json)
    unknown = _run(source="nowhere", action="get")
    assert "source 'nowhere' is not in" in _error(unknown) and "use one of app_db, landing" in _error(unknown)
    no_state_yet = _run(source="landing", action="set", state="{}")
    assert "has no stored state yet" in _error(no_state_yet) and "pass state_id" in _error(no_state_yet)
