"""Jobs of the automation layer: the ingestion cycle, and the on-failure recovery path."""

import dagster as dg

from platform_assets.automation.alerts import Alert, AlertsResource
from platform_assets.automation.settings import CADENCE_TAG, LAYER_TAG

CYCLE_ASSET_KEY = dg.AssetKey(["platform", "cycle"])
CYCLE_TAG = "platform/cycle"
INGESTION_CYCLE_JOB = "ingestion_cycle"
RECOVERY_JOB = "cycle_failure_recovery"


def cycle_status_asset() -> dg.AssetSpec:
    """An external asset whose observations are the cycle's history: each failure and each success."""
    return dg.AssetSpec(
        key=CYCLE_ASSET_KEY,
        group_name="platform",
        description="The platform's data cycle. Each observation records one outcome (status failed or "
        "succeeded), the run, its assets and the error; written by the on-failure and on-success paths.",
        kinds={"dagster"},
    )


def ingestion_cycle_job() -> dg.JobDefinition:  # an unresolved asset job, resolved with the Definitions
    """Every ingestion stream that follows the cycle (sources with their own cadence are left out)."""
    selection = (
        dg.AssetSelection.tag(LAYER_TAG, "ingestion")
        - dg.AssetSelection.tag(CADENCE_TAG, "own")
        - (dg.AssetSelection.tag(CADENCE_TAG, "manual"))
    )
    return dg.define_asset_job(
        INGESTION_CYCLE_JOB,
        selection=selection,
        description="Starts a new cycle: loads every source that follows the cycle cadence. Downstream "
        "models and syncs then run through their automation conditions.",
    )


def cycle_schedule(
    job: dg.JobDefinition,
    cron: str,
    timezone: str,
    default_status: dg.DefaultScheduleStatus,
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="platform_cycle_start",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=default_status,
        description=f"Starts a new ingestion cycle at {cron} ({timezone}).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        cycle_id = context.scheduled_execution_time.isoformat()
        return dg.RunRequest(run_key=f"cycle:{cycle_id}", tags={CYCLE_TAG: cycle_id})

    return _schedule


class FailedRunReport(dg.Config):
    failed_run_id: str
    job_name: str
    assets: list[str] = []
    error: str = ""
    run_url: str = ""


@dg.op(
    description="Marks the cycle failed (observation on platform/cycle) and alerts every channel.",
    retry_policy=dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL),
)
def record_cycle_failure(
    context: dg.OpExecutionContext, config: FailedRunReport, alerts: AlertsResource
) -> None:
    context.log_event(
        dg.AssetObservation(
            asset_key=CYCLE_ASSET_KEY,
            metadata={
                "status": "failed",
                "failed_run_id": config.failed_run_id,
                "job": config.job_name,
                "assets": dg.MetadataValue.json(config.assets),
                "error": dg.MetadataValue.text(config.error[:2000]),
                "run": dg.MetadataValue.url(config.run_url),
            },
        )
    )
    alert = Alert(
        title=f"Run failed: job {config.job_name}",
        severity="error",
        assets=config.assets,
        error=config.error,
        link=config.run_url,
    )
    delivered = alerts.send(alert, context.log)
    context.log.info(f"alert delivered to {delivered}")


@dg.job(
    name=RECOVERY_JOB,
    description="The on-failure path, launched by the run-failure sensor for each failed run.",
    tags={"platform/path": "on_failure"},
)
def cycle_failure_recovery() -> None:
    record_cycle_failure()
