"""`<source>_change_events`: ingests the streams of a Salesforce source whose objects changed, from the org's
Change Data Capture events on the Pub/Sub API (defs/automation/defs.yaml `sensors.change_events`).

Each tick makes one bounded pull (platform_assets/integrations/salesforce/pubsub/consumer.py): from the
replay id in the sensor's cursor (EARLIEST on the first tick, so nothing committed before it is missed), at
most `max_events` events, ending once nothing arrived for `wait_seconds`. The events' entities map to the
source's streams (`objects`, default: the entity name in lower case, as tap-salesforce-bulk names its
streams); one run request extracts exactly the changed streams, incrementally, with a run key made of the
replay ids it covers, and the cursor moves to the last replay id only with that request. The source's
cadence stays the fallback (e.g. while the Pub/Sub API is unreachable the tick fails and nothing is lost:
the next tick resumes from the stored replay id). The Salesforce session is kept between ticks (per
process) and renewed when the Pub/Sub API refuses it, so a short interval does not mean a login per tick.

The run also builds the transformation-layer assets (dbt models) up to `downstream_depth` levels below the
changed streams, after the extraction (default 1: the streams' staging models), so an edit reaches the
warehouse's models in one run instead of a second run launched on the transformation automation's next
tick; lineage decides which models, not names. Automation handles the rest as usual: a model built in the
run that changed its input is not requested again (`executed_with_root_target`), and what lies further
downstream follows on its tick when the models' data versions changed. 0 leaves the models to automation.

The platform's own writes (the syncs' Bulk jobs, whose changeOrigin names `client=<platform_client>`) are
recognised: `platform_writes: skip` (default) does not extract for them, since the platform already knows
what it wrote and extracting would start lineage again (staging -> activation -> the syncs) for nothing
new; `extract` brings them back at once (e.g. when models need the Ids Salesforce gave new records). Either
way every changed stream gets an observation saying how many events were the platform's, and the run tags
count both kinds.

When the stored replay id is rejected (its events expired: Salesforce keeps 72 hours), events were lost:
the tick extracts every mapped stream (incremental extraction reads every change since its bookmark) and
the subscription restarts from EARLIEST.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

import dagster as dg

from platform_assets import environment
from platform_assets.automation.event_sensors import RAW, TRIGGER_TAG, stream_keys
from platform_assets.automation.settings import LAYER_TAG
from platform_assets.env_templates import SettingTemplate, TemplateError
from platform_assets.integrations.salesforce.client import PLATFORM_CLIENT_NAME
from platform_assets.integrations.salesforce.pubsub.consumer import (
    ChangeEvent,
    Pull,
    ReplayIdRejected,
    Session,
    SessionRefused,
    pull_change_events,
)
from platform_assets.integrations.salesforce.resource import SalesforceResource

PlatformWrites = Literal["skip", "extract"]
EVENTS_TAG = "platform/change_events"
PLATFORM_WRITES_TAG = "platform/platform_writes"
REPLAY_TAG = "platform/replay_ids"
_SHOWN_IDS = 20
TRANSFORMATION_LAYER = "transformation"

# Salesforce sessions by connection, kept for the life of the process that evaluates ticks (the code
# server): a tick every few seconds reuses the last one instead of requesting a token each time.
_sessions: dict[tuple[str, ...], Session] = {}


def _session(salesforce: SalesforceResource, renew: bool = False) -> Session:
    key = (salesforce.login_url, salesforce.client_id, salesforce.username or "")
    if renew or key not in _sessions:
        _sessions[key] = Session(*salesforce.get_client().session())
    return _sessions[key]


def with_models_below(streams: dg.AssetSelection, depth: int) -> dg.AssetSelection:
    """The streams plus the transformation-layer assets at most `depth` levels below them."""
    if depth <= 0:
        return streams
    below = streams.downstream(depth=depth, include_self=False) & dg.AssetSelection.tag(
        LAYER_TAG, TRANSFORMATION_LAYER
    )
    return streams | below


def run_selection(
    context: dg.SensorEvaluationContext, streams: Sequence[dg.AssetKey], depth: int
) -> list[dg.AssetKey]:
    """What one run builds: the changed streams, then their models down to `depth` (sorted, streams first)."""
    models = with_models_below(dg.AssetSelection.assets(*streams), depth).resolve(
        context.repository_def.asset_graph
    ) - set(streams)
    return [*streams, *sorted(models, key=lambda key: key.to_user_string())]


def stream_of(entity: str, objects: Mapping[str, str]) -> str:
    """The stream an object's events belong to: declared, else the entity name in lower case."""
    return objects.get(entity, entity.lower())


def _observation(
    key: dg.AssetKey, events: Sequence[ChangeEvent], platform_client: str, extracted: bool
) -> dg.AssetObservation:
    own = [e for e in events if e.client == platform_client]
    changed = sorted({name for e in events for name in e.changed_fields})
    record_ids = list(dict.fromkeys(r for e in events for r in e.record_ids))
    return dg.AssetObservation(
        asset_key=key,
        metadata={
            "change_events": len(events),
            "platform_writes": len(own),
            "change_types": ", ".join(
                f"{t}: {n}" for t, n in sorted(Counter(e.change_type for e in events).items())
            ),
            "changed_fields": ", ".join(changed) or "none (creates and deletes)",
            "record_ids": ", ".join(record_ids[:_SHOWN_IDS]) + (" …" if len(record_ids) > _SHOWN_IDS else ""),
            "extraction_requested": extracted,
            "last_replay_id": events[-1].replay_id.hex(),
        },
    )


def build_change_event_sensor(
    source: str,
    pubsub_url: str,
    channel: str = "/data/ChangeEvents",
    objects: Mapping[str, str] | None = None,
    platform_client: str = PLATFORM_CLIENT_NAME,
    platform_writes: PlatformWrites = "skip",
    minimum_interval_seconds: int = 15,
    batch_size: int = 100,
    max_events: int = 1000,
    wait_seconds: float = 2.0,
    downstream_depth: int = 1,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    where: str = "pubsub_url",
) -> dg.SensorDefinition:
    """The sensor; `pubsub_url` is a template (e.g. "{salesforce_pubsub_url}"), `where` its declaration."""
    name = f"{source}_change_events"
    url_template = SettingTemplate.parse(pubsub_url, where)
    objects = dict(objects or {})

    @dg.sensor(
        name=name,
        target=with_models_below(dg.AssetSelection.key_prefixes([RAW, source]), downstream_depth),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys={"salesforce"},
        description=f"Subscribes to Salesforce change events ({channel}, Pub/Sub API) and ingests exactly "
        f"the {source} streams whose objects changed; the platform's own writes (client={platform_client}) "
        f"{'also trigger extraction' if platform_writes == 'extract' else 'are observed, not extracted'}."
        + (
            f" The same run builds the models up to {downstream_depth} level(s) below the changed streams."
            if downstream_depth > 0
            else ""
        ),
        tags={"layer": "ingestion"},
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            url = url_template.require(environment.current())
        except TemplateError as unset:
            return dg.SkipReason(f"no Pub/Sub API to subscribe to: {unset}")
        keys = stream_keys(context.repository_def, source)
        if not keys:
            return dg.SkipReason(f"no {RAW}/{source}/<stream> assets are loaded")
        cursor = json.loads(context.cursor) if context.cursor else {}
        stored = bytes.fromhex(cursor["replay_id"]) if cursor.get("replay_id") else None

        def pull(session: Session) -> Pull:
            return pull_change_events(
                url,
                session,
                channel,
                stored,
                batch_size=batch_size,
                max_events=max_events,
                wait_seconds=wait_seconds,
            )

        try:
            try:
                pulled = pull(_session(context.resources.salesforce))
            except SessionRefused:  # the kept session expired: log in again, once
                pulled = pull(_session(context.resources.salesforce, renew=True))
        except ReplayIdRejected as gap:
            context.log.warning(f"{gap}; extracting every {source} stream and resubscribing from EARLIEST")
            return dg.SensorResult(
                run_requests=[
                    dg.RunRequest(
                        run_key=f"{source}:cdc-gap:{cursor.get('replay_id')}",
                        asset_selection=run_selection(
                            context, [keys[stream] for stream in sorted(keys)], downstream_depth
                        ),
                        tags={TRIGGER_TAG: name, EVENTS_TAG: "replay gap"},
                    )
                ],
                cursor=json.dumps({}),
            )
        new_cursor = json.dumps(
            {"replay_id": pulled.latest_replay_id.hex()} if pulled.latest_replay_id else cursor
        )
        if not pulled.events:
            return dg.SensorResult(skip_reason=f"no change events on {channel}", cursor=new_cursor)
        return _result(
            context,
            name,
            source,
            keys,
            objects,
            pulled.events,
            platform_client,
            platform_writes,
            new_cursor,
            downstream_depth,
        )

    return _sensor


def _result(
    context: dg.SensorEvaluationContext,
    name: str,
    source: str,
    keys: Mapping[str, dg.AssetKey],
    objects: Mapping[str, str],
    events: Sequence[ChangeEvent],
    platform_client: str,
    platform_writes: PlatformWrites,
    cursor: str,
    downstream_depth: int,
) -> dg.SensorResult:
    by_stream: dict[str, list[ChangeEvent]] = {}
    for event in events:
        by_stream.setdefault(stream_of(event.entity, objects), []).append(event)
    unknown = sorted(set(by_stream) - set(keys))
    if unknown:
        entities = sorted({e.entity for s in unknown for e in by_stream[s]})
        context.log.warning(
            f"change events for {entities} have no asset {RAW}/{source}/<stream> (streams {unknown}); map "
            "them with `objects:` in sensors.change_events, or declare the streams in sources.yaml."
        )
    wanted = sorted(
        stream
        for stream, stream_events in by_stream.items()
        if stream in keys
        and (platform_writes == "extract" or any(e.client != platform_client for e in stream_events))
    )
    observations = [
        _observation(keys[stream], stream_events, platform_client, stream in wanted)
        for stream, stream_events in sorted(by_stream.items())
        if stream in keys
    ]
    own = sum(1 for e in events if e.client == platform_client)
    context.log.info(
        f"{len(events)} change events ({own} the platform's own writes): extracting {wanted or 'nothing'}"
    )
    requests = []
    if wanted:
        first, last = events[0].replay_id.hex(), events[-1].replay_id.hex()
        requests.append(
            dg.RunRequest(
                run_key=f"{source}:cdc:{first}-{last}",
                asset_selection=run_selection(context, [keys[s] for s in wanted], downstream_depth),
                tags={
                    TRIGGER_TAG: name,
                    EVENTS_TAG: str(len(events) - own),
                    PLATFORM_WRITES_TAG: str(own),
                    REPLAY_TAG: f"{first}..{last}",
                },
            )
        )
    skip = (
        None
        if requests
        else f"{len(events)} change events, none to extract ({own} the platform's own writes)"
    )
    return dg.SensorResult(run_requests=requests, asset_events=observations, cursor=cursor, skip_reason=skip)
