"""`lineage_unchanged`: records that an asset not rebuilt, because none of its inputs changed, is current.

Automation rebuilds an asset only when an input's data version or its own code version changed
(conditions.py). An asset left alone for that reason still holds the newest data, yet Dagster's freshness
policies and `on_cron`'s "all inputs updated since the tick" read the time of its last materialization. So,
every tick, this sensor walks the graph from the sources down and *confirms* each asset that is

- current: its latest materialization was built from the data versions its inputs have now, with the code
  version it has now (Dagster's provenance tags `dagster/input_data_version/<input>`), and
- behind an input that was materialized or confirmed after it (e.g. a stream whose run found 0 new rows),

by recording a run-less materialization with the same data version and provenance (metadata
`platform/confirmed_unchanged`), then copies of its checks' latest results, so a failed blocking check keeps
blocking. Nothing is computed, nothing downstream is triggered (the data version did not change), and the
asset counts as updated now for freshness. See docs/automation.md, "What counts as a change".

Private Dagster names used, for want of public ones: the provenance tag names of dagster._core's
data_version module and `repository_def.asset_graph` (the loaded graph's parents, code versions, checks).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_TAG,
    DEFAULT_DATA_VERSION,
    get_input_data_version_tag,
)

from platform_assets.automation.settings import LAYER_TAG

SENSOR_NAME = "lineage_unchanged"
CONFIRMED = "platform/confirmed_unchanged"
_VERSION_TAG_PREFIXES = ("dagster/data_version", "dagster/code_version", "dagster/input_")


@dataclass(frozen=True)
class Latest:
    """An asset's latest materialization: when, and its data version tags."""

    timestamp: float
    tags: Mapping[str, str]


def latest_materializations(
    instance: dg.DagsterInstance, keys: list[dg.AssetKey]
) -> dict[dg.AssetKey, Latest]:
    latest = {}
    for record in instance.get_asset_records(keys):
        materialization = record.asset_entry.last_materialization_record
        event = materialization.asset_materialization if materialization else None
        if materialization is not None and event is not None:
            tags = {k: v for k, v in (event.tags or {}).items() if k.startswith(_VERSION_TAG_PREFIXES)}
            latest[record.asset_entry.asset_key] = Latest(materialization.timestamp, tags)
    return latest


def is_current(node: Any, own: Latest, latest: Mapping[dg.AssetKey, Latest]) -> bool:
    """Built from its inputs' current data versions with its current code version."""
    if node.code_version is not None and own.tags.get(CODE_VERSION_TAG) != node.code_version:
        return False
    for parent in node.parent_keys:
        now = latest[parent].tags.get(DATA_VERSION_TAG) if parent in latest else DEFAULT_DATA_VERSION.value
        if own.tags.get(get_input_data_version_tag(parent)) != now:
            return False
    return True


def unchanged_lineage(asset_graph: Any, latest: dict[dg.AssetKey, Latest], now: float) -> list[dg.AssetKey]:
    """The assets to confirm, sources first; `latest` is updated as if they were confirmed at `now`."""
    confirmed = []
    for key in asset_graph.toposorted_asset_keys:
        node = asset_graph.get(key)
        own = latest.get(key)
        if (
            own is None
            or not node.parent_keys
            or node.tags.get(LAYER_TAG) is None
            or node.is_partitioned
            or not node.is_materializable
        ):
            continue
        behind = any(latest[p].timestamp > own.timestamp for p in node.parent_keys if p in latest)
        if behind and is_current(node, own, latest):
            confirmed.append(key)
            latest[key] = Latest(now, own.tags)
    return confirmed


def confirmation_events(
    instance: dg.DagsterInstance, asset_graph: Any, key: dg.AssetKey, own: Latest
) -> list[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """The run-less materialization, then its checks' latest results again (they must follow it)."""
    events: list[dg.AssetMaterialization | dg.AssetCheckEvaluation] = [
        dg.AssetMaterialization(
            asset_key=key,
            tags=dict(own.tags),
            metadata={CONFIRMED: True, "data_version": own.tags.get(DATA_VERSION_TAG, "")},
            description="No input changed since this asset was built: confirmed current, not rebuilt.",
        )
    ]
    for check_key in sorted(asset_graph.get(key).check_keys, key=lambda c: c.name):
        record = instance.get_latest_asset_check_evaluation_record(check_key)
        evaluation = record.evaluation if record is not None else None
        if evaluation is None:
            continue
        events.append(
            dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=check_key.name,
                passed=evaluation.passed,
                metadata={**evaluation.metadata, CONFIRMED: True, "evaluated_in_run": record.run_id},
                severity=evaluation.severity,
                description=evaluation.description,
                blocking=evaluation.blocking,
            )
        )
    return events


def build_unchanged_lineage_sensor(
    default_status: dg.DefaultSensorStatus, minimum_interval_seconds: int = 30
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Confirms assets whose inputs did not change as current (a run-less materialization "
        "with the same data version), so freshness measures how late the data is, not how long ago "
        "something ran.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        graph = context.repository_def.asset_graph
        latest = latest_materializations(context.instance, list(graph.materializable_asset_keys))
        confirmed = unchanged_lineage(graph, latest, time.time())
        if not confirmed:
            return dg.SkipReason("nothing behind an unchanged input")
        instance = context.instance
        events = [e for key in confirmed for e in confirmation_events(instance, graph, key, latest[key])]
        context.log.info(f"confirmed unchanged: {', '.join(k.to_user_string() for k in confirmed)}")
        return dg.SensorResult(asset_events=events)

    return _sensor
