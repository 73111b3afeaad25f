"""The thin client against the Hightouch sandbox: API answers, retries, and the sandbox's real numbers."""

from __future__ import annotations

import logging
import time

import pytest
import requests

from local_stack.sandbox.hightouch import DEFAULT_SYNCS_DIR, HightouchSandbox, start_sandbox
from platform_assets.integrations.hightouch.client import (
    HightouchApiError,
    HightouchClient,
    HightouchRun,
    HightouchRunTimeout,
)

TRIAL = "trial-nurture-braze"
EXPANSION = "expansion-accounts-google-ads"


def client_for(sandbox: HightouchSandbox, **options) -> HightouchClient:
    return HightouchClient(sandbox.api_base_url, sandbox.api_key, backoff_initial_seconds=0.01, **options)


def run_to_end(client: HightouchClient, slug: str, full_resync: bool = False) -> HightouchRun:
    sync_id = client.find_sync(slug=slug)["id"]
    run_id = client.trigger_sync(sync_id=sync_id, full_resync=full_resync)
    return client.wait_for_run(sync_id, run_id, poll_interval_seconds=0.02, timeout_seconds=30)


def test_request_without_a_valid_key_gets_401_and_is_not_retried(sandbox, caplog):
    client = HightouchClient(sandbox.api_base_url, "not-the-key", backoff_initial_seconds=0.01)
    with caplog.at_level(logging.WARNING), pytest.raises(HightouchApiError) as error:
        client.list_syncs()
    assert error.value.status_code == 401
    assert not [record for record in caplog.records if "retrying" in record.getMessage()]
    unauthenticated = requests.get(f"{sandbox.api_base_url}/syncs", timeout=5)
    assert unauthenticated.status_code == 401


def test_unknown_sync_and_destination_get_404(sandbox):
    client = client_for(sandbox)
    for call in (lambda: client.get_sync("9999"), lambda: client.get_destination("9999")):
        with pytest.raises(HightouchApiError) as error:
            call()
        assert error.value.status_code == 404
    with pytest.raises(HightouchApiError) as error:
        client.trigger_sync(slug="no-such-sync")
    assert error.value.status_code == 404


def test_bad_trigger_bodies_get_422(sandbox):
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    sync_id = sandbox.sync_id(TRIAL)
    bad = [
        (f"/syncs/{sync_id}/trigger", {"json": {"fullResync": "yes"}}),
        (
            f"/syncs/{sync_id}/trigger",
            {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
        ),
        ("/syncs/trigger", {"json": {}}),
        ("/syncs/trigger", {"json": {"syncId": str(sync_id), "syncSlug": TRIAL}}),
        ("/syncs/trigger", {"json": ["a list"]}),
    ]
    for path, options in bad:
        extra_headers = options.pop("headers", {})
        response = requests.post(
            f"{sandbox.api_base_url}{path}", headers={**headers, **extra_headers}, timeout=5, **options
        )
        assert response.status_code == 422, (path, response.text)
        assert response.json()["message"]
    assert sandbox.runs(TRIAL) == []


def test_429_burst_is_retried_until_it_passes(sandbox):
    sandbox.rate_limit_next(3)
    syncs = client_for(sandbox).list_syncs()
    assert {sync["slug"] for sync in syncs} == {TRIAL, EXPANSION}
    assert sandbox.refused_requests == 3


def test_429_beyond_the_attempt_limit_surfaces_as_an_error(sandbox):
    sandbox.rate_limit_next(10)
    with pytest.raises(HightouchApiError) as error:
        client_for(sandbox, max_attempts=3).list_syncs()
    assert error.value.status_code == 429
    assert sandbox.refused_requests == 3


def test_retry_after_header_is_honoured(sandbox):
    sandbox.rate_limit_next(1, retry_after=0.3)
    started = time.monotonic()
    client_for(sandbox).list_syncs()
    assert time.monotonic() - started >= 0.3


def test_trigger_by_slug_and_find_the_run_by_run_id(sandbox):
    client = client_for(sandbox)
    run_id = client.trigger_sync(slug=TRIAL)
    sync_id = str(sandbox.sync_id(TRIAL))
    run = client.wait_for_run(sync_id, run_id, poll_interval_seconds=0.02, timeout_seconds=30)
    assert run.id == run_id and run.status == "success"
    listed = client.list_syncs(slug=TRIAL)
    assert [sync["id"] for sync in listed] == [sync_id]


def test_run_moves_through_hightouch_statuses_in_order(sandbox):
    run = run_to_end(client_for(sandbox), TRIAL)
    assert sandbox.run_statuses(run.id) == ["queued", "querying", "processing", "reporting", "success"]
    assert run.started_at and run.finished_at and run.completion_ratio == 1.0


def test_planned_rows_are_the_difference_from_the_previous_run(sandbox, warehouse):
    client = client_for(sandbox)
    first = run_to_end(client, TRIAL)
    assert (first.planned.added, first.planned.changed, first.planned.removed) == (5, 0, 0)
    assert first.query_size == 5 and first.successful.added == 5

    unchanged = run_to_end(client, TRIAL)
    assert unchanged.planned.total == 0 and unchanged.query_size == 5

    # user1 changes, user2 leaves the audience, user6 and user7 join.
    rows = [("user1@example.com", "User 1", 100)] + [
        (f"user{i}@example.com", f"User {i}", i) for i in (3, 4, 5, 6, 7)
    ]
    warehouse.set_trial_users(rows)
    changed = run_to_end(client, TRIAL)
    assert (changed.planned.added, changed.planned.changed, changed.planned.removed) == (2, 1, 1)
    delivered = {(d["record_key"], d["operation"]) for d in sandbox.deliveries(TRIAL, changed.id)}
    assert delivered == {
        ("user6@example.com", "add"),
        ("user7@example.com", "add"),
        ("user1@example.com", "change"),
        ("user2@example.com", "remove"),
    }
    held = sandbox.destination_records(TRIAL)
    assert set(held) == {email for email, _, _ in rows}
    assert held["user1@example.com"]["usage_score"] == 100


def test_deliveries_are_recorded_per_destination(sandbox):
    client = client_for(sandbox)
    trial, expansion = run_to_end(client, TRIAL), run_to_end(client, EXPANSION)
    trial_destinations = {d["destination_id"] for d in sandbox.deliveries(TRIAL, trial.id)}
    expansion_destinations = {d["destination_id"] for d in sandbox.deliveries(EXPANSION, expansion.id)}
    assert len(trial_destinations) == len(expansion_destinations) == 1
    assert trial_destinations != expansion_destinations
    destination = client.get_destination(str(expansion_destinations.pop()))
    assert destination["type"] == "google_ads"


def test_full_resync_plans_every_row_again(sandbox):
    client = client_for(sandbox)
    run_to_end(client, TRIAL)
    resync = run_to_end(client, TRIAL, full_resync=True)
    assert resync.planned.added == 5 and resync.planned.changed == 0


def test_rows_rejected_in_a_warning_run_are_planned_again(sandbox):
    client = client_for(sandbox)
    sandbox.fault_next_run(TRIAL, "warn", "2 invalid e-mail addresses", failed_rows=2)
    warned = run_to_end(client, TRIAL)
    assert warned.status == "warning" and warned.error == "2 invalid e-mail addresses"
    assert (warned.successful.added, warned.failed.added) == (3, 2)
    retried = run_to_end(client, TRIAL)
    assert retried.status == "success" and retried.planned.added == 2


@pytest.mark.parametrize(
    ("mode", "status"), [("fail", "failed"), ("cancel", "cancelled"), ("interrupt", "interrupted")]
)
def test_faulted_run_ends_with_its_status_and_error_and_delivers_nothing(sandbox, mode, status):
    client = client_for(sandbox)
    sandbox.fault_next_run(TRIAL, mode, f"Braze said no ({mode})")
    run = run_to_end(client, TRIAL)
    assert run.status == status and run.error == f"Braze said no ({mode})"
    assert sandbox.deliveries(TRIAL) == [] and sandbox.destination_records(TRIAL) == {}
    assert run_to_end(client, TRIAL).planned.added == 5


def test_missing_model_table_fails_the_run_with_the_query_error(sandbox, warehouse):
    warehouse.execute("DROP TABLE marketing.mkt_audience_expansion_accounts")
    run = run_to_end(client_for(sandbox), EXPANSION)
    assert run.status == "failed"
    assert "Query failed" in run.error and "mkt_audience_expansion_accounts" in run.error


def test_duplicate_primary_keys_fail_the_run(sandbox, warehouse):
    warehouse.set_trial_users([("same@example.com", "A", 1), ("same@example.com", "B", 2)])
    run = run_to_end(client_for(sandbox), TRIAL)
    assert run.status == "failed" and "duplicate primary key" in run.error


def test_stalled_run_stays_processing_until_released(sandbox):
    client = client_for(sandbox)
    sandbox.fault_next_run(TRIAL, "stall")
    sync_id = str(sandbox.sync_id(TRIAL))
    run_id = client.trigger_sync(sync_id=sync_id)
    with pytest.raises(HightouchRunTimeout, match="still 'processing'"):
        client.wait_for_run(sync_id, run_id, poll_interval_seconds=0.02, timeout_seconds=0.3)
    sandbox.release(TRIAL)
    assert (
        client.wait_for_run(sync_id, run_id, poll_interval_seconds=0.02, timeout_seconds=30).status
        == "success"
    )


def test_sandbox_remembers_deliveries_across_restarts(local_env, warehouse, tmp_path):
    state_db = local_env.sandbox_dir / "hightouch.sqlite3"
    with start_sandbox(state_db=state_db, warehouse=local_env.duckdb_path, step_seconds=0.01) as first:
        first_id = first.sync_id(TRIAL)
        assert run_to_end(client_for(first), TRIAL).planned.added == 5
    with start_sandbox(state_db=state_db, warehouse=local_env.duckdb_path, step_seconds=0.01) as second:
        assert second.sync_id(TRIAL) == first_id
        assert run_to_end(client_for(second), TRIAL).planned.total == 0


def test_controls_health_and_run_page_over_http(sandbox):
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    health = requests.get(f"{sandbox.url}/health", timeout=5).json()
    assert health == {"status": "ok", "syncs": 2}
    fault = requests.post(
        f"{sandbox.url}/__sandbox/faults",
        json={"sync": TRIAL, "mode": "fail", "message": "Braze API key revoked"},
        headers=headers,
        timeout=5,
    )
    assert fault.status_code == 200
    run = run_to_end(client_for(sandbox), TRIAL)
    assert run.error == "Braze API key revoked"
    page = requests.get(f"{sandbox.url}/syncs/{sandbox.sync_id(TRIAL)}/runs/{run.id}", timeout=5)
    assert page.status_code == 200 and "Braze API key revoked" in page.text
    bad_mode = requests.post(
        f"{sandbox.url}/__sandbox/faults", json={"sync": TRIAL, "mode": "x"}, headers=headers
    )
    assert bad_mode.status_code == 422
    assert requests.post(f"{sandbox.url}/__sandbox/faults", json={}, timeout=5).status_code == 401


def test_sandbox_is_seeded_from_the_platform_sync_documents(sandbox):
    client = client_for(sandbox)
    synced = {sync["slug"]: sync for sync in client.list_syncs()}
    assert set(synced) == {path.stem.replace("_", "-") for path in DEFAULT_SYNCS_DIR.glob("*.yaml")}
    assert synced[TRIAL]["primaryKey"] == "email"
    assert client.get_destination(synced[TRIAL]["destinationId"])["type"] == "braze"
