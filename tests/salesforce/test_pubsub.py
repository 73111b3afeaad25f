"""The sandbox's Pub/Sub API (change events), proven with a public client (pysfpubsub from PyPI: the
forcedotcom example flow of GetTopic, GetSchema, Subscribe with a semaphore for flow control, Avro decode)
and with raw gRPC calls where a test needs exact control of the FetchRequests; then the platform's own
bounded pull."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import avro.schema
import grpc
import pytest
import requests
from pysfpubsub import Client
from pysfpubsub import pubsub_api_pb2 as pb2
from pysfpubsub import pubsub_api_pb2_grpc as pb2_grpc
from sf_helpers import credentials_for, fast_client, leads

from local_stack.sandbox.salesforce import SandboxHandle
from platform_assets.integrations.salesforce.pubsub.consumer import (
    ReplayIdRejected,
    Session,
    field_names,
    pull_change_events,
)


class Done(Exception):
    """Ends pysfpubsub's endless subscribe loop from its callback."""


def token(sandbox: SandboxHandle) -> dict[str, Any]:
    form = {"grant_type": "client_credentials", "client_id": sandbox.client_id}
    form["client_secret"] = sandbox.client_secret
    return requests.post(f"{sandbox.url}/services/oauth2/token", data=form, timeout=10).json()


def metadata(sandbox: SandboxHandle) -> tuple[tuple[str, str], ...]:
    body = token(sandbox)
    org_id = body["id"].rstrip("/").split("/")[-2]
    return (
        ("accesstoken", body["access_token"]),
        ("instanceurl", body["instance_url"]),
        ("tenantid", org_id),
    )


@pytest.fixture
def public_client(sandbox: SandboxHandle) -> Iterator[Client]:
    """pysfpubsub's Client, connected as a real org's client is, except for two things the sandbox does not
    have: SOAP login (the session is the REST OAuth token instead) and TLS (plaintext on loopback)."""
    client = Client(
        url=sandbox.url, username="", password="", grpc_host="127.0.0.1", grpc_port=sandbox.pubsub_port
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{sandbox.pubsub_port}")
    client.stub = pb2_grpc.PubSubStub(channel)
    client.metadata = metadata(sandbox)
    yield client
    channel.close()


def rest(sandbox: SandboxHandle, method: str, path: str, body: Any, client_name: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token(sandbox)['access_token']}"}
    if client_name:
        headers["Sforce-Call-Options"] = f"client={client_name}"
    response = requests.request(
        method, f"{sandbox.url}/services/data/v62.0/{path}", json=body, headers=headers, timeout=10
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def subscribe_all(client: Client, topic: str, expected: int, replay: str = "EARLIEST", replay_id=None):
    """Events decoded by the public client until `expected` arrived (pysfpubsub's callback style)."""
    received: list[tuple[bytes, dict[str, Any], str]] = []

    def callback(response: Any, client: Client) -> None:
        for event in response.events:
            schema = client.get_schema_json(event.event.schema_id)
            received.append((event.replay_id, client.decode(schema, event.event.payload), schema))
        if response.pending_num_requested == 0:
            client.release_subscription_semaphore()  # the next FetchRequest, as forcedotcom's example does
        if len(received) >= expected:
            raise Done

    client.semaphore = threading.Semaphore(1)
    with pytest.raises(Done):
        client.subscribe(topic, replay, replay_id, 2, callback)
    return received


def test_public_client_reads_the_change_events_of_rest_composite_and_bulk_writes(
    sandbox: SandboxHandle, public_client: Client
) -> None:
    sandbox.seed({"Account": [{"Name": "Seeded"}]})  # an org's starting state: no events
    created = rest(
        sandbox, "POST", "sobjects/Account", {"Name": "Acme", "Website": "https://a.example"}, "crm-ui"
    )
    rest(
        sandbox,
        "PATCH",
        f"sobjects/Account/{created['id']}",
        {"Name": "Acme Corp", "Website": None},
        "crm-ui",
    )
    composite = {"records": [{"attributes": {"type": "Lead"}, "LastName": "L", "Company": "C"}]}
    rest(sandbox, "POST", "composite/sobjects", composite)
    result = fast_client(credentials_for(sandbox)).ingest(
        "Lead", "upsert", leads(2), external_id_field="Signup_Id__c"
    )
    assert len(result.successful) == 2

    topic = public_client.get_topic("/data/AccountChangeEvent")
    assert (topic.can_subscribe, topic.can_publish, topic.tenant_guid) == (True, False, "00D8d0000000001EAA")
    assert "AccountChangeEvent" in public_client.get_schema_json(topic.schema_id)

    events = subscribe_all(public_client, "/data/ChangeEvents", 5)
    headers = [payload["ChangeEventHeader"] for _, payload, _ in events]
    assert [(h["entityName"], h["changeType"]) for h in headers] == [
        ("Account", "CREATE"),
        ("Account", "UPDATE"),
        ("Lead", "CREATE"),
        ("Lead", "CREATE"),
        ("Lead", "CREATE"),
    ]
    assert [h["changeOrigin"] for h in headers] == [
        "com/salesforce/api/rest/62.0;client=crm-ui",
        "com/salesforce/api/rest/62.0;client=crm-ui",
        "com/salesforce/api/rest/62.0",
        "com/salesforce/api/bulkapi/62.0;client=asset-platform",
        "com/salesforce/api/bulkapi/62.0;client=asset-platform",
    ]
    assert headers[0]["recordIds"] == headers[1]["recordIds"] == [created["id"]]
    assert headers[3]["transactionKey"] == headers[4]["transactionKey"] != headers[2]["transactionKey"]
    assert [h["sequenceNumber"] for h in headers[3:]] == [1, 2]
    # The update: its bitmaps name exactly the changed and nulled fields (forcedotcom's decoding rule).
    _, update, schema_json = events[1]
    names = [f.name for f in avro.schema.parse(schema_json).fields]
    assert field_names(update["ChangeEventHeader"]["changedFields"], names) == (
        "Name",
        "Website",
        "LastModifiedDate",
    )
    assert field_names(update["ChangeEventHeader"]["nulledFields"], names) == ("Website",)
    assert (update["Name"], update["Website"], update["Industry"]) == ("Acme Corp", None, None)
    assert events[0][1]["Website"] == "https://a.example"


def test_replay_from_a_stored_replay_id_gets_exactly_the_missed_events(
    sandbox: SandboxHandle, public_client: Client
) -> None:
    first = [rest(sandbox, "POST", "sobjects/Account", {"Name": f"A{i}"})["id"] for i in range(3)]
    seen = subscribe_all(public_client, "/data/AccountChangeEvent", 3)
    stored = seen[-1][0]
    missed = [rest(sandbox, "POST", "sobjects/Account", {"Name": f"B{i}"})["id"] for i in range(2)]
    rest(sandbox, "DELETE", f"sobjects/Account/{first[0]}", None)

    replayed = subscribe_all(public_client, "/data/AccountChangeEvent", 3, "CUSTOM", stored)
    assert [p["ChangeEventHeader"]["recordIds"] for _, p, _ in replayed] == [
        [missed[0]],
        [missed[1]],
        [first[0]],
    ]
    assert replayed[-1][1]["ChangeEventHeader"]["changeType"] == "DELETE"
    assert len({replay for replay, _, _ in seen + replayed}) == 6  # no event twice


def fetch(sandbox: SandboxHandle, request: pb2.FetchRequest) -> tuple[queue.Queue, queue.Queue, Any]:
    """A raw Subscribe: put FetchRequests (None closes) in the first queue, read responses off the second."""
    more: queue.Queue = queue.Queue()
    responses: queue.Queue = queue.Queue()
    channel = grpc.insecure_channel(f"127.0.0.1:{sandbox.pubsub_port}")

    def requests_stream() -> Iterator[pb2.FetchRequest]:
        yield request
        while (next_request := more.get()) is not None:
            yield next_request

    call = pb2_grpc.PubSubStub(channel).Subscribe(requests_stream(), metadata=metadata(sandbox), timeout=60)

    def read() -> None:
        try:
            for response in call:
                responses.put(response)
        except grpc.RpcError as error:
            responses.put(error)

    threading.Thread(target=read, daemon=True).start()
    return more, responses, call


def test_flow_control_sends_no_more_events_than_requested(sandbox: SandboxHandle) -> None:
    for i in range(5):
        rest(sandbox, "POST", "sobjects/Lead", {"LastName": f"L{i}", "Company": "C"})
    request = pb2.FetchRequest(topic_name="/data/LeadChangeEvent", replay_preset=pb2.ReplayPreset.EARLIEST)
    request.num_requested = 2
    more, responses, call = fetch(sandbox, request)
    try:
        response = responses.get(timeout=30)
        assert (len(response.events), response.pending_num_requested) == (2, 0)
        with pytest.raises(queue.Empty):  # no credit left: nothing more, though 3 events wait
            responses.get(timeout=1.5)
        more.put(pb2.FetchRequest(topic_name="/data/LeadChangeEvent", num_requested=10))
        response = responses.get(timeout=30)
        assert (len(response.events), response.pending_num_requested) == (3, 7)
        rest(sandbox, "POST", "sobjects/Lead", {"LastName": "Live", "Company": "C"})
        response = responses.get(timeout=30)  # a new change arrives on the open subscription
        assert (len(response.events), response.pending_num_requested) == (1, 6)
    finally:
        more.put(None)
        call.cancel()


def test_latest_expired_and_foreign_replay_ids_and_bad_sessions(sandbox: SandboxHandle) -> None:
    rest(sandbox, "POST", "sobjects/Lead", {"LastName": "Old", "Company": "C"})
    request = pb2.FetchRequest(topic_name="/data/LeadChangeEvent", replay_preset=pb2.ReplayPreset.LATEST)
    request.num_requested = 10
    more, responses, call = fetch(sandbox, request)
    try:
        with pytest.raises(queue.Empty):  # LATEST: the old change is not delivered ...
            responses.get(timeout=1.5)
        created = rest(sandbox, "POST", "sobjects/Lead", {"LastName": "New", "Company": "C"})
        response = responses.get(timeout=30)  # ... a new one is
        assert len(response.events) == 1
        assert created["id"] in response.events[0].event.payload.decode("latin-1")
    finally:
        more.put(None)
        call.cancel()

    sandbox.expire_change_events(1)  # the first event is older than retention
    session = Session(*fast_client(credentials_for(sandbox)).session())
    with pytest.raises(ReplayIdRejected):
        pull_change_events(sandbox.pubsub_url, session, "/data/LeadChangeEvent", (0).to_bytes(8, "big"))
    with pytest.raises(ReplayIdRejected):
        pull_change_events(sandbox.pubsub_url, session, "/data/LeadChangeEvent", b"not-ours")
    stub = pb2_grpc.PubSubStub(grpc.insecure_channel(f"127.0.0.1:{sandbox.pubsub_port}"))
    bad = (("accesstoken", "nope"), ("instanceurl", sandbox.url), ("tenantid", "00D8d0000000001EAA"))
    with pytest.raises(grpc.RpcError) as refused:
        stub.GetTopic(pb2.TopicRequest(topic_name="/data/LeadChangeEvent"), metadata=bad)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as unknown:
        stub.GetTopic(pb2.TopicRequest(topic_name="/data/NopeChangeEvent"), metadata=metadata(sandbox))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_bounded_pull_reads_in_batches_and_resumes_where_it_stopped(sandbox: SandboxHandle) -> None:
    client = fast_client(credentials_for(sandbox))
    client.ingest("Lead", "upsert", leads(250), external_id_field="Signup_Id__c")
    session = Session(*client.session())
    topic = "/data/ChangeEvents"
    part = pull_change_events(sandbox.pubsub_url, session, topic, None, batch_size=40, max_events=130)
    assert (len(part.events), part.caught_up) == (130, False)
    rest_of = pull_change_events(sandbox.pubsub_url, session, topic, part.latest_replay_id, batch_size=100)
    assert (len(rest_of.events), rest_of.caught_up) == (120, True)
    ids = [r for e in part.events + rest_of.events for r in e.record_ids]
    assert len(ids) == len(set(ids)) == 250
    assert {(e.entity, e.change_type, e.client) for e in part.events} == {
        ("Lead", "CREATE", "asset-platform")
    }
    nothing = pull_change_events(
        sandbox.pubsub_url, session, topic, rest_of.latest_replay_id, wait_seconds=0.5
    )
    assert (nothing.events, nothing.latest_replay_id) == ([], rest_of.latest_replay_id)
