"""A bounded pull of Salesforce change events over the Pub/Sub API.

`pull_change_events` subscribes from a stored replay id (or EARLIEST without one), asks for events in
batches of `batch_size` (flow control: a new FetchRequest only when the previous credit is used up), stops
after `max_events`, or once nothing arrived for `wait_seconds` (caught up), and returns the events' headers
decoded from Avro with the bitmap fields turned into field names. Nothing is acknowledged to Salesforce:
the caller stores the last replay id it processed and passes it next time, so an interrupted caller reads
the same events again.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import fastavro
import grpc

from platform_assets.integrations.salesforce.pubsub import pubsub_api_pb2 as pb2
from platform_assets.integrations.salesforce.pubsub import pubsub_api_pb2_grpc as pb2_grpc

MAX_BATCH = 100  # the most events one FetchRequest may ask for


class PubSubError(Exception):
    """The Pub/Sub API refused a call; the message says what to check."""


class SessionRefused(PubSubError):
    """The Pub/Sub API refused the session (UNAUTHENTICATED): expired or revoked; log in again."""


class ReplayIdRejected(PubSubError):
    """The stored replay id is unknown to the topic or its events expired (Salesforce keeps 72 hours)."""


@dataclass(frozen=True)
class Session:
    access_token: str
    instance_url: str
    tenant_id: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (
            ("accesstoken", self.access_token),
            ("instanceurl", self.instance_url),
            ("tenantid", self.tenant_id),
        )


@dataclass(frozen=True)
class ChangeEvent:
    """One change event's header (the record values are not needed to decide what to extract)."""

    replay_id: bytes
    entity: str
    change_type: str
    record_ids: tuple[str, ...]
    changed_fields: tuple[str, ...]
    change_origin: str
    transaction_key: str
    commit_timestamp: int

    @property
    def client(self) -> str | None:
        """The API client that made the change (`...;client=<name>` of changeOrigin), if it named one."""
        _, _, client = self.change_origin.partition(";client=")
        return client or None


@dataclass
class Pull:
    events: list[ChangeEvent] = field(default_factory=list)
    latest_replay_id: bytes | None = None
    """Where to resume: the last event's replay id, or a keepalive's newer one."""
    caught_up: bool = False
    """False when the pull stopped at max_events with more events possibly waiting."""


def channel_for(url: str) -> grpc.Channel:
    """https://host:port -> TLS channel; http://host:port -> plaintext (the local sandbox only)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PubSubError(f"Pub/Sub URL {url!r} must look like https://api.pubsub.salesforce.com:7443")
    target = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    if parts.scheme == "https":
        return grpc.secure_channel(target, grpc.ssl_channel_credentials())
    return grpc.insecure_channel(target)


class _Schemas:
    """Avro schemas by id (ids name immutable schemas, so they are kept for the process)."""

    cache: dict[str, tuple[Any, list[str]]] = {}
    lock = threading.Lock()

    @classmethod
    def get(cls, stub: pb2_grpc.PubSubStub, schema_id: str, metadata: Any) -> tuple[Any, list[str]]:
        with cls.lock:
            if schema_id not in cls.cache:
                info = stub.GetSchema(pb2.SchemaRequest(schema_id=schema_id), metadata=metadata, timeout=30)
                schema = fastavro.parse_schema(json.loads(info.schema_json))
                cls.cache[schema_id] = (schema, [f["name"] for f in schema["fields"]])
            return cls.cache[schema_id]


def field_names(bitmaps: list[str], names: list[str]) -> tuple[str, ...]:
    """Salesforce's bitmap fields (["0x<hex>", "<parent>-0x<hex>", ...]) -> field names (top level only)."""
    if not bitmaps or not bitmaps[0].startswith("0x"):
        return ()
    value = int(bitmaps[0], 16)
    return tuple(name for index, name in enumerate(names) if value >> index & 1)


def _decode(stub: pb2_grpc.PubSubStub, event: pb2.ConsumerEvent, metadata: Any) -> ChangeEvent:
    schema, names = _Schemas.get(stub, event.event.schema_id, metadata)
    record = fastavro.schemaless_reader(io.BytesIO(event.event.payload), schema)
    header = record["ChangeEventHeader"]
    return ChangeEvent(
        replay_id=event.replay_id,
        entity=header["entityName"],
        change_type=header["changeType"],
        record_ids=tuple(header["recordIds"]),
        changed_fields=field_names(list(header.get("changedFields") or []), names),
        change_origin=header.get("changeOrigin") or "",
        transaction_key=header.get("transactionKey") or "",
        commit_timestamp=header.get("commitTimestamp") or 0,
    )


def _fetch_requests(first: pb2.FetchRequest, more: queue.Queue[int | None]) -> Iterator[pb2.FetchRequest]:
    yield first
    while (count := more.get()) is not None:
        yield pb2.FetchRequest(topic_name=first.topic_name, num_requested=count)


def pull_change_events(
    url: str,
    session: Session,
    topic: str,
    replay_id: bytes | None,
    *,
    batch_size: int = MAX_BATCH,
    max_events: int = 1000,
    wait_seconds: float = 3.0,
    call_timeout: float = 300.0,
) -> Pull:
    """The events of `topic` after `replay_id` (EARLIEST without one), at most `max_events`."""
    batch = max(1, min(batch_size, MAX_BATCH, max_events))
    first = pb2.FetchRequest(
        topic_name=topic,
        replay_preset=pb2.ReplayPreset.CUSTOM if replay_id else pb2.ReplayPreset.EARLIEST,
        replay_id=replay_id or b"",
        num_requested=batch,
    )
    more: queue.Queue[int | None] = queue.Queue()
    responses: queue.Queue[Any] = queue.Queue()
    metadata = session.metadata()
    pull = Pull(latest_replay_id=replay_id)
    with channel_for(url) as channel:
        stub = pb2_grpc.PubSubStub(channel)
        call = stub.Subscribe(_fetch_requests(first, more), metadata=metadata, timeout=call_timeout)

        def read() -> None:
            try:
                for response in call:
                    responses.put(response)
            except grpc.RpcError as error:
                responses.put(error)
            responses.put(None)

        reader = threading.Thread(target=read, name="pubsub-pull", daemon=True)
        reader.start()
        try:
            _receive(stub, metadata, responses, more, pull, batch, max_events, wait_seconds)
        finally:
            more.put(None)
            call.cancel()
            reader.join(timeout=10)
    return pull


def _receive(
    stub: pb2_grpc.PubSubStub,
    metadata: Any,
    responses: queue.Queue[Any],
    more: queue.Queue[int | None],
    pull: Pull,
    batch: int,
    max_events: int,
    wait_seconds: float,
) -> None:
    while len(pull.events) < max_events:
        try:
            response = responses.get(timeout=wait_seconds)
        except queue.Empty:
            pull.caught_up = True
            return
        if response is None:
            pull.caught_up = True
            return
        if isinstance(response, grpc.RpcError):
            raise _error(response)
        pull.events.extend(_decode(stub, event, metadata) for event in response.events)
        if response.latest_replay_id:
            pull.latest_replay_id = response.latest_replay_id
        if response.events and response.pending_num_requested == 0 and len(pull.events) < max_events:
            more.put(min(batch, max_events - len(pull.events)))


def _error(error: grpc.RpcError) -> PubSubError:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    if code == grpc.StatusCode.INVALID_ARGUMENT and "replay" in (details or "").lower():
        return ReplayIdRejected(f"Pub/Sub API rejected the stored replay id: {details}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return SessionRefused(f"Pub/Sub API: session refused ({details}); check the Salesforce credentials.")
    return PubSubError(f"Pub/Sub API Subscribe failed: {code.name if code else 'error'}: {details}")
