"""Dead runs: a run whose process died is marked failed, its pool slots are freed, and an alert goes out.

Why the platform needs this: Dagster's run monitoring only notices a dead run worker through a run launcher
that can check worker health (Kubernetes, Docker, ECS). A run started by `dagster job execute` (as
`python3 tasks.py cycle` does) has no launcher, and `dagster dev`'s default launcher cannot check health, so
a SIGKILLed run stayed STARTED forever and its step kept the pool slot: with one `warehouse` slot locally,
every later writer waited on `Step blocked by limit for pool warehouse`.

How: every run's orchestrating process tags its run with who it is (`platform/worker`: host, pid and the
process's start time), through the executor `with_worker_identity` wraps. The reaper (`reap`) looks at
in-progress runs tagged with this host and checks that process: gone, a zombie, or a different process now
holding the pid (another start time) means the run is dead. Then it reports the run failed
(`instance.report_run_failed`), frees its pool slots and alerts. A process on this host is either alive or
not, so nothing is guessed from timing. Runs on other hosts (Kubernetes run pods) are left to Dagster's run
monitoring, which the K8s launcher supports.

Who runs it: the `dead_run_reaper` sensor (the daemon: `dagster dev`, production) every 30 s, and
`python3 tasks.py cycle|ui` before starting Dagster (`python -m platform_assets.automation.dead_runs`).
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import yaml

from platform_assets.automation.alerts import Alert, AlertsResource, Logger

WORKER_TAG = "platform/worker"
REAPED_TAG = "platform/dead_run"
# A run can die before it starts executing (no tag yet) only while STARTING; run monitoring's
# start timeout covers that. CANCELING runs whose worker died never finish cancelling either.
WATCHED_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
LOGGER = logging.getLogger("platform_assets.dead_runs")


@dataclass(frozen=True)
class Worker:
    """The process orchestrating a run: host, pid and start time (which tells a reused pid apart)."""

    host: str
    pid: int
    started: float

    @classmethod
    def current(cls) -> Worker:
        process = psutil.Process()
        return cls(socket.gethostname(), process.pid, process.create_time())

    def tag(self) -> str:
        return f"{self.host} {self.pid} {self.started:.3f}"

    @classmethod
    def parse(cls, text: str) -> Worker | None:
        try:
            host, pid, started = text.rsplit(" ", 2)
            return cls(host, int(pid), float(started))
        except ValueError:
            return None

    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Only meaningful on its own host (is_local)."""
        try:
            process = psutil.Process(self.pid)
            # create_time is rounded differently across reads; a reused pid starts much later.
            return (
                abs(process.create_time() - self.started) < 1.0 and process.status() != psutil.STATUS_ZOMBIE
            )
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return False
        except psutil.AccessDenied:  # cannot tell (another user's process): never fail a run on a guess
            return True


# ------------------------------------------------------------------------------------ the run's side


class _WorkerTaggingExecutor(dg.Executor):
    """Delegates to the platform's executor after tagging the run with the orchestrating process."""

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        plan_context.instance.add_run_tags(plan_context.run_id, {WORKER_TAG: Worker.current().tag()})
        yield from self._inner.execute(plan_context, execution_plan)


def with_worker_identity(executor: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    """`executor`, with each run tagged by the process that orchestrates it (same name and config)."""
    create = executor.executor_creation_fn
    assert create is not None, f"executor {executor.name} has no creation function"
    return dg.ExecutorDefinition(
        name=executor.name,
        config_schema=executor.config_schema,
        requirements=executor.get_requirements,
        executor_creation_fn=lambda init_context: _WorkerTaggingExecutor(create(init_context)),
        description=executor.description,
    )


# ------------------------------------------------------------------------------------ the reaper


def dead_runs(instance: dg.DagsterInstance) -> list[tuple[dg.DagsterRun, Worker]]:
    """In-progress runs whose worker, on this host, is gone."""
    found = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=WATCHED_STATUSES)):
        worker = Worker.parse(run.tags.get(WORKER_TAG, ""))
        if worker is not None and worker.is_local() and not worker.alive():
            found.append((run, worker))
    return found


def reap(
    instance: dg.DagsterInstance, alerts: AlertsResource | None, logger: Logger | None = None
) -> list[str]:
    """Fail every dead run, free its pool slots, alert; returns the run ids reaped."""
    logger = logger or LOGGER
    reaped = []
    for run, worker in dead_runs(instance):
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status not in WATCHED_STATUSES:
            continue  # it finished between the two reads
        message = (
            f"Run {run.run_id} ({run.job_name}) was {run.status.value} but its process is gone (pid "
            f"{worker.pid} on {worker.host}); marked failed and its pool slots freed by the dead-run reaper."
        )
        instance.add_run_tags(run.run_id, {REAPED_TAG: "reaped"})
        instance.report_run_failed(current, message)
        # No public API frees a run's slots; the instance's daemon uses this same storage method for runs
        # that ended, only after `free_slots_after_run_end_seconds` and only while a daemon runs.
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        logger.warning(message)
        reaped.append(run.run_id)
        if alerts is not None:
            _alert(alerts, run, message, logger)
    return reaped


def _alert(alerts: AlertsResource, run: dg.DagsterRun, message: str, logger: Logger) -> None:
    alert = Alert(
        title=f"Run died: job {run.job_name}",
        severity="error",
        assets=sorted(key.to_user_string() for key in run.asset_selection or ()),
        error=message,
        link=alerts.run_url(run.run_id),
    )
    try:
        alerts.send(alert, logger)
    except Exception as error:  # the run is already failed and its slots freed; say so and go on
        logger.error(f"dead-run alert for {run.run_id} not delivered: {error}")


def build_dead_run_sensor(
    default_status: dg.DefaultSensorStatus, minimum_interval_seconds: int = 30
) -> dg.SensorDefinition:
    @dg.sensor(
        name="dead_run_reaper",
        default_status=default_status,
        minimum_interval_seconds=minimum_interval_seconds,
        description="Marks failed every run whose process died (SIGKILL, OOM, a lost container), frees its "
        "pool slots and alerts, so the next run is not blocked by its slots (docs/production.md).",
    )
    def _sensor(context: dg.SensorEvaluationContext, alerts: AlertsResource) -> dg.SkipReason:
        reaped = reap(context.instance, alerts, context.log)
        return dg.SkipReason(f"reaped dead runs {reaped}" if reaped else "no dead runs")

    return _sensor


# ------------------------------------------------------------------------------------ the command


DECLARATION = Path(__file__).resolve().parents[1] / "defs" / "automation" / "defs.yaml"


def declared_alerts(declaration: Path = DECLARATION) -> AlertsResource:
    """The alerts resource as defs/automation/defs.yaml declares it, without loading the definitions."""
    from platform_assets.components.automation import AlertSettings, alerts_resource

    attributes = (yaml.safe_load(declaration.read_text()) or {}).get("attributes") or {}
    return alerts_resource(AlertSettings.model_validate(attributes.get("alerts") or {}), str(declaration))


def main() -> None:
    """Reap the dead runs of the instance in DAGSTER_HOME (tasks.py runs this before Dagster starts)."""
    logging.basicConfig(level=logging.WARNING, format="[dead runs] %(message)s", stream=sys.stdout)
    LOGGER.setLevel(logging.INFO)
    with dg.DagsterInstance.get() as instance:
        reaped = reap(instance, declared_alerts())
    LOGGER.info(f"{len(reaped)} dead run(s) reaped" if reaped else "no dead runs")


if __name__ == "__main__":
    main()
