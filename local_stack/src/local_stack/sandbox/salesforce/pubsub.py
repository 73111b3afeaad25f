"""The sandbox's Pub/Sub API: gRPC service `eventbus.v1.PubSub` serving the org's change events.

As a real org's (api.pubsub.salesforce.com), on its own loopback port and in plaintext:
- every call carries the REST session as metadata `accesstoken`, `instanceurl` and `tenantid` (the org id);
  anything else is UNAUTHENTICATED;
- GetTopic(`/data/ChangeEvents` or `/data/<Object>ChangeEvent`), GetSchema(schema id) -> Avro schema JSON;
- Subscribe: the first FetchRequest names the topic and where to start (LATEST: after the newest event,
  EARLIEST: the oldest retained, CUSTOM: after `replay_id`; an unknown or expired replay id is
  INVALID_ARGUMENT); events are sent only against requested credit (`num_requested`, at most 100 per
  FetchRequest, added up over the stream), `pending_num_requested` says what is left; with nothing to
  send, a keepalive FetchResponse carries `latest_replay_id` every `keepalive_seconds` (270 s, as Salesforce).
- Publish: change event channels are read-only, as in Salesforce.
Replay ids are 8-byte big-endian event numbers; clients treat them as opaque bytes.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import TYPE_CHECKING

import grpc

from local_stack.sandbox.salesforce.change_events import channel_objects, event_schema, schema_by_id
from local_stack.sandbox.salesforce.schema import ORG_ID
from platform_assets.integrations.salesforce.pubsub import pubsub_api_pb2 as pb2
from platform_assets.integrations.salesforce.pubsub import pubsub_api_pb2_grpc as pb2_grpc

if TYPE_CHECKING:
    from local_stack.sandbox.salesforce.server import Sandbox

log = logging.getLogger(__name__)

MAX_PER_FETCH = 100
KEEPALIVE_SECONDS = 270.0
_POLL_SECONDS = 0.25


def encode_replay(replay: int) -> bytes:
    return replay.to_bytes(8, "big")


def decode_replay(raw: bytes) -> int | None:
    return int.from_bytes(raw, "big") if len(raw) == 8 else None


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, error_code: str, message: str) -> None:
    """Fail the call as Salesforce does: a status, a message and an `error-code` trailer."""
    context.set_trailing_metadata((("error-code", error_code),))
    context.abort(code, f"[{uuid.uuid4()}] {message}")


class _Credit:
    """The events a subscriber asked for and has not been sent yet (flow control)."""

    def __init__(self, wake: threading.Condition) -> None:
        self.pending = 0
        self.wake = wake
        self.lock = threading.Lock()

    def add(self, requested: int) -> None:
        with self.lock:
            self.pending += max(0, min(requested, MAX_PER_FETCH))
        with self.wake:
            self.wake.notify_all()

    def take(self, count: int) -> None:
        with self.lock:
            self.pending -= count


class PubSubService(pb2_grpc.PubSubServicer):
    def __init__(self, sandbox: Sandbox, keepalive_seconds: float = KEEPALIVE_SECONDS) -> None:
        self.sandbox = sandbox
        self.keepalive_seconds = keepalive_seconds

    # ------------------------------------------------------------ auth

    def _authenticate(self, context: grpc.ServicerContext) -> None:
        metadata = {key.lower(): value for key, value in context.invocation_metadata()}
        token = metadata.get("accesstoken", "")
        instance = metadata.get("instanceurl", "").rstrip("/")
        tenant = metadata.get("tenantid", "")
        with self.sandbox.auth.lock:
            known = token in self.sandbox.auth.tokens
        if not known or instance != self.sandbox.url or tenant not in (ORG_ID, ORG_ID[:15]):
            _abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "sfdc.platform.eventbus.grpc.service.auth.error",
                "Invalid session: send the REST session as metadata accesstoken, instanceurl (the org's "
                "instance URL) and tenantid (the org id); the token may have expired.",
            )

    def _objects(self, topic: str, context: grpc.ServicerContext) -> tuple[str, ...]:
        objects = channel_objects(topic)
        if objects is None:
            _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                "sfdc.platform.eventbus.grpc.service.topic.not.found",
                f"Topic {topic!r} not found: change event channels are /data/ChangeEvents and "
                "/data/<Object>ChangeEvent.",
            )
        assert objects is not None
        return objects

    # ------------------------------------------------------------ unary calls

    def GetTopic(self, request: pb2.TopicRequest, context: grpc.ServicerContext) -> pb2.TopicInfo:
        self._authenticate(context)
        objects = self._objects(request.topic_name, context)
        return pb2.TopicInfo(
            topic_name=request.topic_name,
            tenant_guid=ORG_ID,
            can_publish=False,
            can_subscribe=True,
            # A one-object channel has that object's schema; /data/ChangeEvents mixes them (see each event).
            schema_id=event_schema(objects[0]).schema_id if len(objects) == 1 else "",
            rpc_id=str(uuid.uuid4()),
        )

    def GetSchema(self, request: pb2.SchemaRequest, context: grpc.ServicerContext) -> pb2.SchemaInfo:
        self._authenticate(context)
        schema = schema_by_id(request.schema_id)
        if schema is None:
            _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                "sfdc.platform.eventbus.grpc.schema.not.found",
                f"Schema {request.schema_id!r} not found.",
            )
        assert schema is not None
        return pb2.SchemaInfo(
            schema_json=schema.schema_json, schema_id=schema.schema_id, rpc_id=str(uuid.uuid4())
        )

    def Publish(self, request: pb2.PublishRequest, context: grpc.ServicerContext) -> pb2.PublishResponse:
        self._authenticate(context)
        _abort(
            context,
            grpc.StatusCode.PERMISSION_DENIED,
            "sfdc.platform.eventbus.grpc.service.publish.not.allowed",
            f"Change event channel {request.topic_name!r} is read-only.",
        )
        return pb2.PublishResponse()

    # ------------------------------------------------------------ subscribe

    def _start(self, request: pb2.FetchRequest, context: grpc.ServicerContext) -> int:
        """The replay id after which this subscription delivers."""
        org = self.sandbox.org
        with org.lock:
            before_oldest, newest = org.events.bounds()
        if request.replay_preset == pb2.ReplayPreset.LATEST:
            return newest
        if request.replay_preset == pb2.ReplayPreset.EARLIEST:
            return before_oldest
        replay = decode_replay(request.replay_id)
        if replay is None or not before_oldest <= replay <= newest:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed",
                "The Replay ID validation failed: it is not a replay id of this topic, or its event is "
                "no longer retained. Subscribe with EARLIEST or LATEST.",
            )
        assert replay is not None
        return replay

    def Subscribe(
        self, request_iterator: Iterator[pb2.FetchRequest], context: grpc.ServicerContext
    ) -> Iterator[pb2.FetchResponse]:
        self._authenticate(context)
        first = next(request_iterator, None)
        if first is None:
            return
        objects = self._objects(first.topic_name, context)
        position = self._start(first, context)
        org = self.sandbox.org
        credit = _Credit(org.events.published)
        credit.add(first.num_requested)
        threading.Thread(
            target=_read_requests, args=(request_iterator, credit), name="pubsub-fetch-requests", daemon=True
        ).start()
        rpc_id = str(uuid.uuid4())
        last_sent = time.monotonic()
        while context.is_active():
            if credit.pending > 0:
                with org.lock:
                    events = org.events.after(position, objects, min(credit.pending, MAX_PER_FETCH))
                if events:
                    credit.take(len(events))
                    position = events[-1].replay
                    last_sent = time.monotonic()
                    yield pb2.FetchResponse(
                        events=[
                            pb2.ConsumerEvent(
                                event=pb2.ProducerEvent(
                                    id=str(uuid.UUID(int=event.replay)),
                                    schema_id=event_schema(event.entity).schema_id,
                                    payload=event.payload(),
                                ),
                                replay_id=encode_replay(event.replay),
                            )
                            for event in events
                        ],
                        latest_replay_id=encode_replay(position),
                        rpc_id=rpc_id,
                        pending_num_requested=credit.pending,
                    )
                    continue
            if time.monotonic() - last_sent >= self.keepalive_seconds:
                last_sent = time.monotonic()
                yield pb2.FetchResponse(
                    latest_replay_id=encode_replay(position),
                    rpc_id=rpc_id,
                    pending_num_requested=credit.pending,
                )
            with org.events.published:
                org.events.published.wait(_POLL_SECONDS)


def _read_requests(requests: Iterator[pb2.FetchRequest], credit: _Credit) -> None:
    """Add each later FetchRequest's credit until the client closes the stream or the call ends."""
    try:
        for request in requests:
            credit.add(request.num_requested)
    except grpc.RpcError:
        pass  # the call ended (cancelled, deadline, server stop)


def start_pubsub_server(
    sandbox: Sandbox, host: str, port: int, keepalive_seconds: float = KEEPALIVE_SECONDS
) -> tuple[grpc.Server, int]:
    """The Pub/Sub gRPC server for `sandbox` on host:port (0 = any free port), started; and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="pubsub"))
    pb2_grpc.add_PubSubServicer_to_server(PubSubService(sandbox, keepalive_seconds), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise OSError(f"cannot serve the Pub/Sub API on {host}:{port}: the port is in use or not bindable")
    server.start()
    return server, bound
