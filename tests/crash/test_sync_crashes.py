"""SIGKILL a Salesforce sync run at each phase of a Bulk job; the next run finishes with exact counts.

The sync runs in `dagster asset materialize` (a real run on a local instance, in the one-slot `warehouse`
pool). The sandbox holds the run at the phase (a held request, or a slow job) so the kill lands there; then
the dead-run reaper must free the pool, and the next run must leave Salesforce with exactly one Lead per model
row and sync state naming exactly those Leads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from conftest import Platform, kill_when, reap_and_check, slot_holders, succeed

from local_stack.sandbox.salesforce import SandboxHandle, start_sandbox
from platform_assets.warehouse import connect_duckdb

pytestmark = pytest.mark.integration

LOCATION = str(Path(__file__).with_name("crash_location.py"))
ROWS = 40
SYNC = "salesforce/crash_leads"


@pytest.fixture
def org(tmp_path: Path) -> Iterator[SandboxHandle]:
    with start_sandbox(db_path=tmp_path / "org.sqlite") as handle:
        yield handle


def make_model(platform: Platform, rows: int = ROWS) -> None:
    connection = connect_duckdb(platform.local_dir / "warehouse.duckdb")
    try:
        connection.execute("CREATE SCHEMA IF NOT EXISTS activation")
        connection.execute(
            "CREATE OR REPLACE TABLE activation.act_crash_leads AS SELECT 'sgn_' || i AS signup_id, "
            "'First' AS FirstName, 'Last' AS LastName, 'Same Company' AS Company, "
            # Identical rows: insert results are matched by every value sent.
            "NULL::VARCHAR AS Email FROM range(?) t(i)",
            [rows],
        )
    finally:
        connection.close()


def sync_state(platform: Platform) -> dict[str, str]:
    connection = connect_duckdb(platform.local_dir / "warehouse.duckdb")
    try:
        rows = connection.execute(
            "SELECT record_key, salesforce_id FROM platform_sync.sync_state WHERE sync_name = 'crash_leads'"
        ).fetchall()
    finally:
        connection.close()
    return dict(rows)


def in_progress(org: SandboxHandle) -> bool:
    return any(job["state"] == "InProgress" for job in org.sandbox.bulk.ingest_jobs())


def held(org: SandboxHandle) -> bool:
    return org.held_requests() > 0


# phase -> (set the sandbox up to hold the run there, how the test sees it got there, batch size,
#           whether the next run recovers the killed run's job or sends the records again)
PHASES: dict[str, tuple[Callable[[SandboxHandle], None], Callable[[SandboxHandle], bool], int, bool]] = {
    "job created, upload not received": (lambda org: org.hold_requests("PUT /batches"), held, ROWS, False),
    "upload received, job not closed": (
        lambda org: org.hold_requests("PATCH /jobs/ingest/"),
        held,
        ROWS,
        False,
    ),
    "job processing in Salesforce": (lambda org: org.slow_jobs(3.0), in_progress, ROWS, True),
    # Two jobs: the first one's results are downloaded, the second's download is held.
    "results downloaded, state not applied": (
        lambda org: org.hold_requests("GET /successfulResults", skip=1),
        held,
        ROWS // 2,
        True,
    ),
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_sync_killed_at_a_phase_is_finished_exactly_by_the_next_run(
    phase: str, platform: Platform, org: SandboxHandle
):
    hold, reached, batch_size, recovered = PHASES[phase]
    make_model(platform)
    hold(org)
    env = {"CRASH_SF_URL": org.url, "CRASH_BATCH_SIZE": str(batch_size)}

    kill_when(platform.materialize("-f", LOCATION, "--select", SYNC, **env), lambda: reached(org), phase)
    org.reset_faults()
    instance = platform.instance
    reap_and_check(instance)

    succeed(platform.materialize("-f", LOCATION, "--select", SYNC, **env), platform)

    leads = {row["Id"] for row in org.sandbox.rest.query("SELECT Id FROM Lead", False, "v62.0")["records"]}
    state = sync_state(platform)
    assert len(leads) == ROWS, f"{len(leads)} Leads for {ROWS} model rows"
    assert len(state) == ROWS and set(state.values()) == leads
    materialization = instance.get_latest_materialization_event(dg.AssetKey(SYNC.split("/")))
    metadata = materialization.asset_materialization.metadata
    assert metadata["recovered_from_earlier_run"].value == (ROWS if recovered else 0)
    assert slot_holders(instance) == set()
