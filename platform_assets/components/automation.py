"""The automation component: cycle schedule, automation sensors per layer, event sensors, alerts, jobs.

Declared in platform_assets/defs/automation/defs.yaml. Its `policy:` settings are published in the
Definitions metadata so `apply_platform_policy` (called in definitions.py over everything) reads the same
declaration; nothing here touches an external system at load time.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from platform_assets import environment
from platform_assets.automation import (
    change_events,
    dead_runs,
    event_sensors,
    jobs,
    meltano_state,
    path_sensors,
    unchanged,
)
from platform_assets.automation.alerts import AlertsResource, parse_channels
from platform_assets.automation.policy import POLICY_METADATA_KEY
from platform_assets.automation.settings import LAYER_TAG, LAYERS, PolicySettings
from platform_assets.components.meltano import declared_sources
from platform_assets.integrations.salesforce.client import PLATFORM_CLIENT_NAME


class FileDropSensorSettings(BaseModel):
    """A sensor that ingests a source's streams when files land in `<folder>/<stream>/`."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="A source of defs/ingestion/sources.yaml.")
    folder: str = Field(
        description="Template over the platform environment: a folder or an object-store prefix, e.g. "
        "'{landing_url}' (s3://bucket/prefix where PLATFORM_LANDING_URL says so)."
    )
    storage_options: dict[str, str | dict[str, str]] = Field(
        default_factory=dict,
        description="fsspec options for an object-store folder (endpoint_url, key, secret), as templates; "
        "unset ones fall back to the AWS credential chain.",
    )
    interval_seconds: int = 30
    settle_seconds: float = Field(
        default=5.0, description="Files changed more recently are still being written."
    )
    suffixes: list[str] = Field(default_factory=lambda: list(event_sensors.DROP_SUFFIXES))


class WatermarkSensorSettings(BaseModel):
    """A sensor that ingests a source's streams when max(<column>) of their tables moves."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="A source of defs/ingestion/sources.yaml.")
    database_url: str = Field(description="Template, e.g. '{env:PLATFORM_APP_DB_URL}'; unset: skip.")
    schema_name: str = Field(alias="schema")
    column: str = "updated_at"
    tables: dict[str, str] = Field(default_factory=dict, description="stream -> table, where they differ.")
    interval_seconds: int = 60


class ChangeEventSensorSettings(BaseModel):
    """A sensor ingesting the streams of a Salesforce source whose objects changed (Pub/Sub API events)."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="A Salesforce source of defs/ingestion/sources.yaml.")
    pubsub_url: str = Field(default="{salesforce_pubsub_url}", description="Template of the Pub/Sub API URL.")
    channel: str = Field(default="/data/ChangeEvents", description="/data/ChangeEvents or a custom channel.")
    objects: dict[str, str] = Field(
        default_factory=dict,
        description="Object -> stream where the stream is not the object's lower-case name.",
    )
    platform_client: str = Field(
        default=PLATFORM_CLIENT_NAME, description="changeOrigin client of the platform's own writes."
    )
    platform_writes: change_events.PlatformWrites = Field(
        default="skip", description="skip: observe the platform's own writes; extract: ingest them too."
    )
    interval_seconds: int = 15
    batch_size: int = Field(default=100, description="num_requested per FetchRequest (1..100).")
    max_events: int = Field(default=1000, description="Events read per tick at most.")
    wait_seconds: float = Field(default=2.0, description="A tick stops reading after this long idle.")
    downstream_depth: int = Field(
        default=1,
        description="The run also builds the dbt models this many levels below the changed streams "
        "(1: their staging models); 0 leaves them to the transformation automation's next tick.",
    )

    @field_validator("downstream_depth")
    @classmethod
    def _depth(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"downstream_depth must be 0 or more, got {value}")
        return value

    @field_validator("batch_size", "max_events", "wait_seconds")
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        if value <= 0 or (info.field_name == "batch_size" and value > 100):
            raise ValueError(f"{info.field_name} must be positive (batch_size at most 100), got {value}")
        return value


class SensorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    running_by_default_in: list[environment.Mode] = Field(
        default_factory=lambda: [environment.Mode.LOCAL],
        description="Environments where the schedule and sensors start RUNNING; elsewhere ops turn them on.",
    )
    automation_interval_seconds: int = 30
    file_drops: list[FileDropSensorSettings] = Field(default_factory=list)
    watermarks: list[WatermarkSensorSettings] = Field(default_factory=list)
    change_events: list[ChangeEventSensorSettings] = Field(default_factory=list)
    path_interval_seconds: int = 30
    dead_run_interval_seconds: int = Field(
        default=30, description="How often the dead_run_reaper sensor looks for runs whose process died."
    )

    def check_sources(self, declared: Collection[str], sources_file: Path, where: str) -> None:
        """Every event sensor starts a declared source; fails naming the key otherwise."""
        kinds = (("file_drops", self.file_drops), ("watermarks", self.watermarks))
        for kind, entries in (*kinds, ("change_events", self.change_events)):
            for index, entry in enumerate(entries):
                if entry.source not in declared:
                    raise AutomationConfigError(
                        f"{where}: sensors.{kind}[{index}].source: {entry.source!r} is not a source of "
                        f"{sources_file} (sources: {', '.join(declared) or 'none'})"
                    )


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Channels: {type: log | slack_webhook | email | <registered>, ...settings}; the log "
        "always gets a line. Settings name environment variables, never values (automation/alerts.py).",
    )
    dagster_url_env: str | None = Field(default=None, description="Variable holding the UI's base URL.")
    freshness_states: list[str] = Field(default_factory=lambda: ["FAIL"])
    success_summary_layers: list[str] = Field(default_factory=lambda: ["activation"])
    notify_on_success: bool = True


def alerts_resource(alerts: AlertSettings, where: str = "defs.yaml") -> AlertsResource:
    """The alerts resource of the declared channels, checked now so a bad declaration fails load."""
    parse_channels(alerts.channels, where=f"{where}: alerts.channels")
    return AlertsResource(channels=alerts.channels, dagster_url_env=alerts.dagster_url_env)


class AutomationConfigError(ValueError):
    """defs/automation/defs.yaml declares something the platform cannot build; names the file and key."""


class AutomationComponent(dg.Component, dg.Model, dg.Resolvable):
    """Data-aware scheduling for the platform (see docs/automation.md)."""

    sources_file: str = Field(
        default="../ingestion/sources.yaml", description="The sources the event sensors may name."
    )
    policy: PolicySettings = Field(default_factory=PolicySettings)
    sensors: SensorSettings = Field(default_factory=SensorSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    meltano_state_job: bool = True

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        where = str(Path(context.path) / "defs.yaml")
        sources_file = (Path(context.path) / self.sources_file).resolve()
        self.sensors.check_sources(declared_sources(sources_file), sources_file, where)
        return build_automation_defs(self.policy, self.sensors, self.alerts, self.meltano_state_job, where)


def build_automation_defs(
    policy: PolicySettings,
    sensors: SensorSettings,
    alerts: AlertSettings,
    with_meltano_state_job: bool = True,
    where: str = "defs.yaml",
) -> dg.Definitions:
    running = environment.current().mode in sensors.running_by_default_in
    sensor_status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    schedule_status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    cycle_job = jobs.ingestion_cycle_job()
    automation = [
        dg.AutomationConditionSensorDefinition(
            f"automation_{layer}",
            target=dg.AssetSelection.tag(LAYER_TAG, layer),
            default_status=sensor_status,
            minimum_interval_seconds=sensors.automation_interval_seconds,
            description=f"Evaluates the automation conditions of the {layer} layer; pause it to pause only "
            f"{layer}.",
        )
        for layer in LAYERS
    ]
    event = [
        event_sensors.build_file_drop_sensor(
            drop.source,
            drop.folder,
            minimum_interval_seconds=drop.interval_seconds,
            settle_seconds=drop.settle_seconds,
            suffixes=tuple(drop.suffixes),
            default_status=sensor_status,
            where=f"{where}: sensors.file_drops[{index}].folder",
            storage_options=drop.storage_options,
        )
        for index, drop in enumerate(sensors.file_drops)
    ] + [
        event_sensors.build_watermark_sensor(
            mark.source,
            mark.database_url,
            schema=mark.schema_name,
            tables=mark.tables,
            column=mark.column,
            minimum_interval_seconds=mark.interval_seconds,
            default_status=sensor_status,
            where=f"{where}: sensors.watermarks[{index}].database_url",
        )
        for index, mark in enumerate(sensors.watermarks)
    ]
    cdc = [
        change_events.build_change_event_sensor(
            entry.source,
            entry.pubsub_url,
            channel=entry.channel,
            objects=entry.objects,
            platform_client=entry.platform_client,
            platform_writes=entry.platform_writes,
            minimum_interval_seconds=entry.interval_seconds,
            batch_size=entry.batch_size,
            max_events=entry.max_events,
            wait_seconds=entry.wait_seconds,
            downstream_depth=entry.downstream_depth,
            default_status=sensor_status,
            where=f"{where}: sensors.change_events[{index}].pubsub_url",
        )
        for index, entry in enumerate(sensors.change_events)
    ]
    extra_jobs = [meltano_state.meltano_state_job] if with_meltano_state_job else []
    paths = [
        path_sensors.build_run_failure_sensor(
            jobs.cycle_failure_recovery, sensor_status, sensors.path_interval_seconds
        ),
        path_sensors.build_run_success_sensor(
            sensor_status,
            summary_layers=alerts.success_summary_layers,
            excluded_jobs=[jobs.RECOVERY_JOB, *(job.name for job in extra_jobs)],
            notify=alerts.notify_on_success,
            minimum_interval_seconds=sensors.path_interval_seconds,
        ),
        path_sensors.build_freshness_alert_sensor(
            sensor_status, alerts.freshness_states, sensors.path_interval_seconds
        ),
        unchanged.build_unchanged_lineage_sensor(sensor_status, sensors.path_interval_seconds),
        # Runs in every environment by default: a dead run's pool slots would otherwise block all later runs.
        dead_runs.build_dead_run_sensor(dg.DefaultSensorStatus.RUNNING, sensors.dead_run_interval_seconds),
    ]
    return dg.Definitions(
        assets=[jobs.cycle_status_asset()],
        jobs=[cycle_job, jobs.cycle_failure_recovery, *extra_jobs],
        schedules=[jobs.cycle_schedule(cycle_job, policy.cycle.cron, policy.cycle.timezone, schedule_status)],
        sensors=[*automation, *event, *cdc, *paths],
        resources={"alerts": alerts_resource(alerts, where)},
        metadata={POLICY_METADATA_KEY: dg.MetadataValue.json(policy.model_dump(mode="json"))},
    )
