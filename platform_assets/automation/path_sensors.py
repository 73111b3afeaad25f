"""Conditional paths and alerts: on failure, on success, and on freshness failures.

- on failure: `run_failure_sensor` launches the recovery job (marks the cycle failed, alerts) per failed run.
- on success: `run_status_sensor(SUCCESS)` records the cycle's success and posts a summary for runs that
  finished a cycle (updated an activation asset, or the cycle start itself).
- freshness: reads the FRESHNESS_STATE_CHANGE events the freshness daemon writes and alerts on FAIL.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

import dagster as dg

from platform_assets.automation.alerts import Alert, AlertsResource
from platform_assets.automation.dead_runs import REAPED_TAG
from platform_assets.automation.jobs import CYCLE_ASSET_KEY, CYCLE_TAG, FailedRunReport
from platform_assets.automation.settings import LAYER_TAG

MAX_ERROR_CHARS = 1500


def _keys_for_run(instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType) -> list[str]:
    records = instance.get_records_for_run(run_id=run_id, of_type=event_type, limit=10_000).records
    keys = {
        record.event_log_entry.dagster_event.asset_key
        for record in records
        if record.event_log_entry.dagster_event and record.event_log_entry.dagster_event.asset_key
    }
    return sorted(key.to_user_string() for key in keys)


def failed_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """Assets the run planned to update but did not."""
    planned = _keys_for_run(instance, run.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    done = set(_keys_for_run(instance, run.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION))
    return [key for key in planned if key not in done]


def _root_cause(error: object) -> str:
    """The innermost error of Dagster's wrapped chain: what the asset actually raised."""
    while getattr(error, "cause", None) is not None:
        error = error.cause  # type: ignore[attr-defined]
    return str(getattr(error, "message", error)).strip()


def failure_text(context: dg.RunFailureSensorContext) -> str:
    steps = [
        f"{event.step_key}: {_root_cause(event.step_failure_data.error)}"
        for event in context.get_step_failure_events()
        if event.step_failure_data and event.step_failure_data.error
    ]
    text = "\n".join(steps) or (context.failure_event.message or "run failed")
    return text[:MAX_ERROR_CHARS]


def build_run_failure_sensor(
    recovery_job: dg.JobDefinition,
    default_status: dg.DefaultSensorStatus,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="cycle_on_failure",
        request_job=recovery_job,
        default_status=default_status,
        minimum_interval_seconds=minimum_interval_seconds,
        description="On-failure path: for each failed run, launches the recovery job that marks the cycle "
        "failed and alerts.",
    )
    def _sensor(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> dg.RunRequest | dg.SkipReason:
        run = context.dagster_run
        assets = failed_assets(context.instance, run)
        error = failure_text(context)
        if run.tags.get(REAPED_TAG):
            return dg.SkipReason(f"run {run.run_id} died; the dead-run reaper already alerted")
        if run.job_name == recovery_job.name:
            # The recovery path itself failed (e.g. every channel down): leave a line in the log at least.
            context.log.error(f"recovery run {run.run_id} failed: {error}")
            return dg.SkipReason(f"recovery job run {run.run_id} failed; not recovering the recovery")
        report = FailedRunReport(
            failed_run_id=run.run_id,
            job_name=run.job_name,
            assets=assets,
            error=error,
            run_url=alerts.run_url(run.run_id),
        )
        return dg.RunRequest(
            run_key=f"recover:{run.run_id}",
            run_config=dg.RunConfig(ops={"record_cycle_failure": report}),
            tags={"platform/failed_run": run.run_id},
        )

    return _sensor


def _layer_of(repository_def: dg.RepositoryDefinition, key_string: str) -> str | None:
    key = dg.AssetKey.from_user_string(key_string)
    assets_def = repository_def.assets_defs_by_key.get(key)
    if assets_def is None:
        return None
    return next((spec.tags.get(LAYER_TAG) for spec in assets_def.specs if spec.key == key), None)


def build_run_success_sensor(
    default_status: dg.DefaultSensorStatus,
    summary_layers: Collection[str] = ("activation",),
    excluded_jobs: Sequence[str] = (),
    notify: bool = True,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="cycle_on_success",
        default_status=default_status,
        minimum_interval_seconds=minimum_interval_seconds,
        description=f"On-success path: when a run updates {sorted(summary_layers)} assets (or a cycle start "
        "succeeds), records the cycle's success on platform/cycle and posts a summary.",
    )
    def _sensor(context: dg.RunStatusSensorContext, alerts: AlertsResource) -> dg.SkipReason | None:
        run = context.dagster_run
        if run.job_name in excluded_jobs:
            return dg.SkipReason(f"{run.job_name} is not part of the cycle")
        updated = _keys_for_run(context.instance, run.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)
        layers = {_layer_of(context.repository_def, key) for key in updated}
        if CYCLE_TAG not in run.tags and not layers & set(summary_layers):
            return dg.SkipReason(f"run {run.run_id} updated no {sorted(summary_layers)} asset")
        record = context.instance.get_run_record_by_id(run.run_id)
        took = (
            (record.end_time - record.start_time) if record and record.end_time and record.start_time else 0
        )
        context.instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key=CYCLE_ASSET_KEY,
                metadata={
                    "status": "succeeded",
                    "run_id": run.run_id,
                    "job": run.job_name,
                    "assets_updated": dg.MetadataValue.json(updated),
                    "duration_seconds": round(took, 1),
                    "run": dg.MetadataValue.url(alerts.run_url(run.run_id)),
                },
            )
        )
        summary = Alert(
            title=f"Cycle step succeeded: {len(updated)} asset(s) updated by {run.job_name} in {took:.0f}s",
            severity="info",
            assets=updated,
            link=alerts.run_url(run.run_id),
        )
        if notify:
            alerts.send(summary, context.log)
        else:
            alerts.notifiers(context.log)[0].send(summary)
        return None

    return _sensor


def build_freshness_alert_sensor(
    default_status: dg.DefaultSensorStatus,
    alert_states: Collection[str] = ("FAIL",),
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="freshness_alerts",
        default_status=default_status,
        minimum_interval_seconds=minimum_interval_seconds,
        description=f"Alerts when the freshness daemon moves an asset to {sorted(alert_states)}.",
    )
    def _sensor(context: dg.SensorEvaluationContext, alerts: AlertsResource) -> dg.SkipReason | None:
        after = int(context.cursor) if context.cursor else None
        records = context.instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE, after_cursor=after),
            ascending=True,
            limit=500,
        )
        if not records:
            return dg.SkipReason("no freshness state changes")
        changes = [record.event_log_entry.dagster_event.event_specific_data for record in records]
        failing = [change for change in changes if str(change.new_state.value) in alert_states]
        for change in changes:
            if change not in failing:
                context.log.info(f"freshness of {change.key.to_user_string()}: {change.new_state.value}")
        if failing:
            alerts.send(freshness_alert(context.instance, failing, alerts), context.log)
        context.update_cursor(str(records[-1].storage_id))
        return None

    return _sensor


def freshness_alert(instance: dg.DagsterInstance, changes: Sequence, alerts: AlertsResource) -> Alert:
    now = time.time()
    details = []
    for change in changes:
        latest = instance.get_latest_materialization_event(change.key)
        age = f"last updated {(now - latest.timestamp) / 60:.0f} min ago" if latest else "never updated"
        details.append((change.key.to_user_string(), f"{change.new_state.value} ({age})"))
    keys = [change.key.to_user_string() for change in changes]
    return Alert(
        title=f"Freshness failed: {len(keys)} asset(s) older than their freshness policy allows",
        severity="error",
        assets=keys,
        error="freshness policy " + "/".join(sorted({str(c.new_state.value) for c in changes})),
        details=details,
        link=alerts.asset_url(changes[0].key),
        link_label="Asset",
    )
