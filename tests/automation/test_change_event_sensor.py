"""The Salesforce change-event sensor against the sandbox's Pub/Sub API, on a real (temporary) instance: an
edit requests exactly its object's stream, a repeated tick requests nothing, the cursor (replay id) carries
over, the platform's own writes are recognised, and expired replay ids fall back to extracting everything.
The source here (`crm`, with an `Opportunity -> deals` mapping) is not the sample's."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pytest
import requests

from local_stack.sandbox.salesforce import SandboxHandle, start_sandbox
from platform_assets.automation.change_events import (
    EVENTS_TAG,
    PLATFORM_WRITES_TAG,
    build_change_event_sensor,
)
from platform_assets.integrations.salesforce.client import SalesforceClient, SalesforceCredentials
from platform_assets.integrations.salesforce.resource import SalesforceResource

STREAMS = ["account", "lead", "deals"]


@pytest.fixture
def org(tmp_path: Path) -> Iterator[SandboxHandle]:
    with start_sandbox(db_path=tmp_path / "org.sqlite") as sandbox:
        sandbox.seed(
            {
                "Account": [{"Name": "Acme", "Workspace_Id__c": "ws_1"}],
                "Opportunity": [{"Name": "Renewal", "StageName": "Prospecting", "CloseDate": "2027-01-01"}],
            }
        )
        yield sandbox


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as temporary:
        yield temporary


def _defs(
    org: SandboxHandle, below: Sequence[dg.AssetSpec] = (), **settings
) -> tuple[dg.SensorDefinition, dg.Definitions]:
    specs = [dg.AssetSpec(["raw", "crm", stream], tags={"layer": "ingestion"}) for stream in STREAMS]

    @dg.multi_asset(name="meltano_crm", specs=specs, can_subset=True)
    def _ingest(context) -> Iterator[dg.MaterializeResult]:
        for key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key)

    sensor = build_change_event_sensor(
        "crm", org.pubsub_url, objects={"Opportunity": "deals"}, wait_seconds=1.0, **settings
    )
    resource = SalesforceResource(login_url=org.url, client_id=org.client_id, client_secret=org.client_secret)
    assets = [
        _ingest,
        *([dg.multi_asset(name="models", specs=below, can_subset=True)(_build)] if below else []),
    ]
    return sensor, dg.Definitions(assets=assets, sensors=[sensor], resources={"salesforce": resource})


def _build(context) -> Iterator[dg.MaterializeResult]:
    for key in context.selected_asset_keys:
        yield dg.MaterializeResult(asset_key=key)


def _tick(sensor, defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"salesforce": defs.resources["salesforce"]},
    )
    return sensor.evaluate_tick(context)


def _requested(result) -> list[list[str]]:
    return [sorted(key.to_user_string() for key in r.asset_selection) for r in result.run_requests or []]


def _edit(org: SandboxHandle, sobject: str, field: str, value: str, client: str = "crm-ui") -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": org.client_id,
        "client_secret": org.client_secret,
    }
    session = requests.post(f"{org.url}/services/oauth2/token", data=form, timeout=10).json()
    headers = {
        "Authorization": f"Bearer {session['access_token']}",
        "Sforce-Call-Options": f"client={client}",
    }
    base = f"{org.url}/services/data/v62.0"
    record_id = requests.get(
        f"{base}/query", params={"q": f"SELECT Id FROM {sobject}"}, headers=headers, timeout=10
    )
    target = record_id.json()["records"][0]["Id"]
    response = requests.patch(
        f"{base}/sobjects/{sobject}/{target}", json={field: value}, headers=headers, timeout=10
    )
    assert response.status_code == 204, response.text


def _platform_client(org: SandboxHandle) -> SalesforceClient:
    credentials = SalesforceCredentials(
        login_url=org.url, client_id=org.client_id, client_secret=org.client_secret
    )
    return SalesforceClient(credentials, poll_interval=0.02)


def test_an_edit_requests_exactly_its_objects_stream_once_and_the_cursor_carries_over(
    org: SandboxHandle, instance: dg.DagsterInstance
) -> None:
    sensor, defs = _defs(org)
    first = _tick(sensor, defs, instance, None)
    assert _requested(first) == []  # seeding published nothing

    _edit(org, "Account", "Name", "Acme Corp")
    edited = _tick(sensor, defs, instance, first.cursor)
    assert _requested(edited) == [["raw/crm/account"]]
    request = edited.run_requests[0]
    assert (request.tags[EVENTS_TAG], request.tags[PLATFORM_WRITES_TAG]) == ("1", "0")
    (observation,) = edited.asset_events
    assert observation.metadata["changed_fields"].value == "LastModifiedDate, Name"

    repeated = _tick(sensor, defs, instance, edited.cursor)
    assert _requested(repeated) == []
    again = _tick(sensor, defs, instance, first.cursor)  # a tick whose cursor was not saved: same run key
    assert again.run_requests[0].run_key == request.run_key

    _edit(org, "Opportunity", "StageName", "Closed Won")
    resumed = _tick(sensor, defs, instance, json.loads(json.dumps(repeated.cursor)))  # stored, reloaded
    assert _requested(resumed) == [["raw/crm/deals"]]
    assert resumed.run_requests[0].run_key != request.run_key


def test_the_platforms_own_writes_are_recognised_and_extracted_only_when_declared(
    org: SandboxHandle, instance: dg.DagsterInstance
) -> None:
    rows = [{"LastName": f"L{i}", "Company": "C", "Email": f"l{i}@example.com"} for i in range(3)]
    assert len(_platform_client(org).ingest("Lead", "insert", rows).successful) == 3
    _edit(org, "Account", "Name", "Acme Corp")

    skip_sensor, skip_defs = _defs(org)
    skipped = _tick(skip_sensor, skip_defs, instance, None)
    assert _requested(skipped) == [["raw/crm/account"]]
    assert skipped.run_requests[0].tags[PLATFORM_WRITES_TAG] == "3"
    lead = next(e for e in skipped.asset_events if e.asset_key == dg.AssetKey(["raw", "crm", "lead"]))
    assert lead.metadata["platform_writes"].value == 3
    assert lead.metadata["extraction_requested"].value is False

    extract_sensor, extract_defs = _defs(org, platform_writes="extract")
    extracted = _tick(extract_sensor, extract_defs, instance, None)
    assert _requested(extracted) == [["raw/crm/account", "raw/crm/lead"]]


def test_events_of_objects_without_a_stream_are_reported_and_passed(
    org: SandboxHandle, instance: dg.DagsterInstance
) -> None:
    sensor, defs = _defs(org)
    rows = [{"Subject": "Call", "Status": "Open"}]
    assert len(_platform_client(org).ingest("Task", "insert", rows).successful) == 1
    _edit(org, "Task", "Subject", "Call back")
    result = _tick(sensor, defs, instance, None)
    assert _requested(result) == [] and result.asset_events == []
    assert _requested(_tick(sensor, defs, instance, result.cursor)) == []


def test_an_expired_replay_id_extracts_every_stream_and_resubscribes_from_the_earliest(
    org: SandboxHandle, instance: dg.DagsterInstance
) -> None:
    sensor, defs = _defs(org)
    _edit(org, "Account", "Name", "One")
    seen = _tick(sensor, defs, instance, None)
    _edit(org, "Account", "Name", "Two")
    _edit(org, "Opportunity", "Name", "Three")
    org.expire_change_events(2)  # the stored replay id's event is gone: the next change was missed
    gap = _tick(sensor, defs, instance, seen.cursor)
    assert _requested(gap) == [["raw/crm/account", "raw/crm/deals", "raw/crm/lead"]]
    assert json.loads(gap.cursor) == {}
    after = _tick(sensor, defs, instance, gap.cursor)  # EARLIEST: the retained events again
    assert _requested(after) == [["raw/crm/deals"]]


# Made-up lineage below the crm streams: two model levels, and a sync reading the first level.
MODELS = [
    dg.AssetSpec(
        ["crm_staging", "accounts"], deps=[["raw", "crm", "account"]], tags={"layer": "transformation"}
    ),
    dg.AssetSpec(["crm_staging", "deals"], deps=[["raw", "crm", "deals"]], tags={"layer": "transformation"}),
    dg.AssetSpec(
        ["crm_marts", "pipeline"], deps=[["crm_staging", "accounts"]], tags={"layer": "transformation"}
    ),
    dg.AssetSpec(["crm_sync", "accounts"], deps=[["crm_staging", "accounts"]], tags={"layer": "activation"}),
]


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (1, ["crm_staging/accounts", "raw/crm/account"]),
        (0, ["raw/crm/account"]),
        (2, ["crm_marts/pipeline", "crm_staging/accounts", "raw/crm/account"]),
    ],
)
def test_the_run_also_builds_the_models_below_the_changed_streams_by_lineage(
    org: SandboxHandle, instance: dg.DagsterInstance, depth: int, expected: list[str]
) -> None:
    sensor, defs = _defs(org, below=MODELS, downstream_depth=depth)
    _edit(org, "Account", "Name", "Acme Corp")
    result = _tick(sensor, defs, instance, None)
    # Only the changed stream's lineage, only models (never the sync), streams first in the selection.
    assert _requested(result) == [expected]
    assert result.run_requests[0].asset_selection[0] == dg.AssetKey(["raw", "crm", "account"])
    # The sensor's target holds every asset it may request, so Dagster can launch the run.
    job = defs.get_repository_def().get_job(sensor.job_name)
    assert set(expected) <= {key.to_user_string() for key in job.asset_layer.selected_asset_keys}


def test_ticks_reuse_the_salesforce_session_and_renew_it_when_refused(
    org: SandboxHandle, instance: dg.DagsterInstance
) -> None:
    sensor, defs = _defs(org)
    first = _tick(sensor, defs, instance, None)
    issued = len(org.sandbox.auth.tokens)
    again = _tick(sensor, defs, instance, first.cursor)
    assert len(org.sandbox.auth.tokens) == issued  # no login for the second tick

    org.expire_sessions()  # the kept session is refused: the tick logs in again and reads the edit
    _edit(org, "Account", "Name", "Acme Corp")
    renewed = _tick(sensor, defs, instance, again.cursor)
    assert _requested(renewed) == [["raw/crm/account"]]
