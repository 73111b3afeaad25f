"""The automation component: cycle schedule, automation sensors per layer, event sensors, alerts, jobs.

Declared in platform_assets/defs/automation/defs.yaml. Its `policy:` settings are published in the
Definitions metadata so `apply_platform_policy` (called in definitions.py over everything) reads the same
declaration; nothing here touches an external system at load time.
"""

from __future__ import annotations

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field

from platform_assets import environment
from platform_assets.automation import event_sensors, jobs, meltano_state, path_sensors
from platform_assets.automation.alerts import alerts_resource_from_env
from platform_assets.automation.policy import POLICY_METADATA_KEY
from platform_assets.automation.settings import LAYER_TAG, LAYERS, PolicySettings


class LandingSensorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    interval_seconds: int = 30
    settle_seconds: float = Field(
        default=5.0, description="Files changed more recently are still being written."
    )


class WatermarkSensorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    interval_seconds: int = 60
    schema_name: str = Field(default="app", alias="schema")
    column: str = "updated_at"
    tables: dict[str, str] = Field(default_factory=dict, description="stream -> table, where they differ.")


class SensorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    running_by_default_in: list[environment.Mode] = Field(
        default_factory=lambda: [environment.Mode.LOCAL],
        description="Environments where the schedule and sensors start RUNNING; elsewhere ops turn them on.",
    )
    automation_interval_seconds: int = 30
    landing: LandingSensorSettings = Field(default_factory=LandingSensorSettings)
    app_db_watermark: WatermarkSensorSettings = Field(default_factory=WatermarkSensorSettings)
    path_interval_seconds: int = 30


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    freshness_states: list[str] = Field(default_factory=lambda: ["FAIL"])
    success_summary_layers: list[str] = Field(default_factory=lambda: ["activation"])
    notify_on_success: bool = True


class AutomationComponent(dg.Component, dg.Model, dg.Resolvable):
    """Data-aware scheduling for the platform (see docs/readme/automation.md)."""

    policy: PolicySettings = Field(default_factory=PolicySettings)
    sensors: SensorSettings = Field(default_factory=SensorSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    meltano_state_job: bool = True

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_automation_defs(self.policy, self.sensors, self.alerts, self.meltano_state_job)


def build_automation_defs(
    policy: PolicySettings,
    sensors: SensorSettings,
    alerts: AlertSettings,
    with_meltano_state_job: bool = True,
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
    event = []
    if sensors.landing.enabled:
        event.append(
            event_sensors.build_landing_sensor(
                minimum_interval_seconds=sensors.landing.interval_seconds,
                settle_seconds=sensors.landing.settle_seconds,
                default_status=sensor_status,
            )
        )
    if sensors.app_db_watermark.enabled:
        watermark = sensors.app_db_watermark
        event.append(
            event_sensors.build_watermark_sensor(
                schema=watermark.schema_name,
                tables=watermark.tables,
                column=watermark.column,
                minimum_interval_seconds=watermark.interval_seconds,
                default_status=sensor_status,
            )
        )
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
    ]
    return dg.Definitions(
        assets=[jobs.cycle_status_asset()],
        jobs=[cycle_job, jobs.cycle_failure_recovery, *extra_jobs],
        schedules=[jobs.cycle_schedule(cycle_job, policy.cycle.cron, policy.cycle.timezone, schedule_status)],
        sensors=[*automation, *event, *paths],
        resources={"alerts": alerts_resource_from_env()},
        metadata={POLICY_METADATA_KEY: dg.MetadataValue.json(policy.model_dump(mode="json"))},
    )
