"""A workflow document as Dagster definitions: one job, a trigger sensor, and its schedules.

The job: an op `variables` whose run config holds the workflow's variables (defaults shown and editable in
the launchpad), one op per step, and an op `outcome`. A step op catches its step's error and passes its
status (succeeded, failed or skipped) to the steps after it, so failure and completion paths run inside
the same run; each step decides from its predecessors' statuses (`when` + `require`) whether it runs.
`outcome` then fails the run when any step failed, so the run's status is the workflow's.

The trigger sensor runs the trigger query and requests one run per row (or one for the first row), with
run key `<workflow>:<version>:<row key>:<attempt>`: a row whose run succeeded or is still going is not
launched again, a row whose runs all failed is retried on the next tick as a new attempt.
"""

import json
import os
import time
import traceback
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import dagster as dg
import requests
from dagster_graphql import DagsterGraphQLClient

from platform_assets import environment
from platform_assets.automation.alerts import DEFAULT_DAGSTER_URL, Alert, AlertsResource
from platform_assets.components.salesforce_syncs import sync_pool
from platform_assets.warehouse import Warehouse
from platform_assets.warehouse import transaction as warehouse_transaction
from platform_assets.workflows import sql as declared_sql
from platform_assets.workflows.spec import Step, Workflow
from platform_assets.workflows.syncs import (
    WorkflowSyncs,
    check_references,
    run_hightouch_sync,
    run_salesforce_sync,
)

TAG_NAME = "workflow/name"
TAG_VERSION = "workflow/version"
TAG_REVISION = "workflow/git_revision"
TAG_KEY = "workflow/key"
TAG_ATTEMPT = "workflow/attempt"
VARIABLE_TAG_PREFIX = "workflow/var."
STEP_TAG_PREFIX = "workflow/step."
PARENT_RUN_TAG = "workflow/parent_run"
PARENT_STEP_TAG = "workflow/parent_step"
DAGSTER_URL_ENV = "PLATFORM_DAGSTER_URL"
VARIABLES_OP = "variables"
OUTCOME_OP = "outcome"

SUCCEEDED, FAILED, SKIPPED = "succeeded", "failed", "skipped"
_TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
_MATCHES = {"success": {SUCCEEDED}, "failure": {FAILED}, "completion": {SUCCEEDED, FAILED}}


class WorkflowTriggerError(RuntimeError):
    """The trigger query's rows do not fit the declaration; names the file and the columns."""


class AppDbNotConfigured(RuntimeError):
    """A trigger reads the application database where none is configured: its sensor skips, saying so."""


def job_name(workflow: Workflow) -> str:
    return f"workflow_{workflow.name}"


def version_tags(workflow: Workflow) -> dict[str, str]:
    return {TAG_NAME: workflow.name, TAG_VERSION: workflow.version, TAG_REVISION: workflow.git_revision}


def build_workflow_defs(
    workflow: Workflow, running: bool = False, syncs: WorkflowSyncs | None = None
) -> dg.Definitions:
    """`syncs`: the sync documents its `salesforce_sync`/`hightouch_sync` steps may name (checked here)."""
    syncs = syncs or WorkflowSyncs()
    check_references(workflow, syncs)
    job = workflow_job(workflow, syncs)
    sensors = [trigger_sensor(workflow, job, running)] if workflow.document.trigger else []
    schedules = [
        workflow_schedule(workflow, job, index, running) for index in range(len(workflow.document.schedules))
    ]
    return dg.Definitions(jobs=[job], sensors=sensors, schedules=schedules)


# -- the job ----------------------------------------------------------------------------------------------


def should_run(step: Step, statuses: list[str]) -> bool:
    """Whether a step runs, given its predecessors' statuses (a first step always runs)."""
    if not statuses:
        return True
    matches = [status in _MATCHES[step.when] for status in statuses]
    return all(matches) if step.require == "all" else any(matches)


def op_name(workflow: Workflow, node: str) -> str:
    """Op definition names are unique per code location; the job names its nodes by step (aliases)."""
    return f"{workflow.name}__{node}"


def workflow_job(workflow: Workflow, syncs: WorkflowSyncs) -> dg.JobDefinition:
    steps = workflow.steps

    def node(name: str) -> dg.NodeInvocation:
        return dg.NodeInvocation(op_name(workflow, name), alias=name)

    dependencies: dict[dg.NodeInvocation, dict[str, dg.DependencyDefinition]] = {node(VARIABLES_OP): {}}
    for index, step in enumerate(steps):
        dependencies[node(step.name)] = {
            VARIABLES_OP: dg.DependencyDefinition(VARIABLES_OP),
            **{f"after_{name}": dg.DependencyDefinition(name) for name in workflow.predecessors(index)},
        }
    dependencies[node(OUTCOME_OP)] = {
        f"step_{step.name}": dg.DependencyDefinition(step.name) for step in steps
    }
    graph = dg.GraphDefinition(
        name=job_name(workflow),
        node_defs=[
            variables_op(workflow),
            *(step_op(workflow, index, syncs) for index in range(len(steps))),
            outcome_op(workflow),
        ],
        dependencies=dependencies,
        description=workflow.document.description
        or f"Workflow {workflow.name} ({workflow.source_file.name}).",
    )
    return graph.to_job(tags=version_tags(workflow))


def variables_op(workflow: Workflow) -> dg.OpDefinition:
    schema = {
        name: dg.Field(
            dg.Noneable(variable.python_type),
            default_value=variable.default,
            is_required=False,
            description=variable.description,
        )
        for name, variable in workflow.document.variables.items()
    }

    @dg.op(name=op_name(workflow, VARIABLES_OP), config_schema=schema, out=dg.Out(dict))
    def _variables(context: dg.OpExecutionContext) -> dict:
        values = dict(context.op_config)
        # A run launched from the launchpad has no variable tags yet: the Runs page shows these.
        context.instance.add_run_tags(context.run_id, variable_tags(values))
        context.log.info(
            f"workflow {workflow.name} {workflow.version}: variables {json.dumps(values, default=str)}"
        )
        return values

    return _variables


_STEP_RESOURCES = {
    "sql": {"warehouse"},
    "alert": {"alerts"},
    "salesforce_sync": {"warehouse", "salesforce"},
    "hightouch_sync": {"hightouch"},
}


def _step_pool(step: Step) -> str | None:
    """Like the assets doing the same work: a local warehouse writer, a Salesforce sync, Hightouch (its
    sandbox reads the local DuckDB file)."""
    if step.kind == "salesforce_sync":
        return sync_pool()
    return "warehouse" if step.kind in ("sql", "hightouch_sync") else None


def step_op(workflow: Workflow, index: int, syncs: WorkflowSyncs) -> dg.OpDefinition:
    step = workflow.steps[index]
    predecessors = workflow.predecessors(index)
    resources = _STEP_RESOURCES.get(step.kind, set())

    @dg.op(
        name=op_name(workflow, step.name),
        description=step.description
        or f"{step.kind} step; runs on {step.when} of {step.require} of "
        f"{', '.join(predecessors) or 'nothing (first step)'}",
        ins={VARIABLES_OP: dg.In(dict), **{f"after_{name}": dg.In(dict) for name in predecessors}},
        out=dg.Out(dict),
        required_resource_keys=resources,
        pool=_step_pool(step),
    )
    def _step(context: dg.OpExecutionContext, **inputs: Any) -> dict:
        variables = inputs.pop(VARIABLES_OP)
        before = {key.removeprefix("after_"): value for key, value in inputs.items()}
        if not should_run(step, [value["status"] for value in before.values()]):
            context.log.info(
                f"step {step.name} skipped: {step.when} of {step.require} of {list(before)} not met"
            )
            return _record(context, step, SKIPPED)
        try:
            metadata = run_step(context, step, variables, before, syncs)
        except Exception as error:  # the step's failure is its status: the failure paths run next
            context.log.error(f"step {step.name} failed:\n{traceback.format_exc()}")
            return _record(context, step, FAILED, f"{type(error).__name__}: {error}")
        if metadata:
            context.add_output_metadata(metadata)
        return _record(context, step, SUCCEEDED)

    return _step


def _record(context: dg.OpExecutionContext, step: Step, status: str, error: str | None = None) -> dict:
    """The step's status, also as a run tag so the run list shows each step's outcome."""
    context.instance.add_run_tags(context.run_id, {f"{STEP_TAG_PREFIX}{step.name}": status})
    return {"step": step.name, "status": status, "error": error}


def run_step(
    context: dg.OpExecutionContext,
    step: Step,
    variables: Mapping[str, Any],
    before: Mapping[str, dict],
    syncs: WorkflowSyncs | None = None,
) -> dict[str, Any] | None:
    """Run the step's action; returns metadata for the step's output (sync steps)."""
    if step.salesforce_sync is not None:
        return run_salesforce_sync(context, syncs or WorkflowSyncs(), step.salesforce_sync, variables)
    if step.hightouch_sync is not None:
        return run_hightouch_sync(context, syncs or WorkflowSyncs(), step.hightouch_sync)
    if step.sql is not None:
        warehouse: Warehouse = context.resources.warehouse
        with warehouse.session() as session, warehouse_transaction(session) as tx:
            for statement in step.statements:
                declared_sql.execute(tx, statement, variables)
    elif step.http is not None:
        call = step.http
        url = call.url.format_map({name: quote(str(value), safe="") for name, value in variables.items()})
        headers = {
            header: dg.EnvVar(variable).get_value() or "" for header, variable in call.headers_env.items()
        }
        response = requests.request(
            call.method,
            url,
            json=_substitute(call.json_body, variables),
            headers=headers,
            timeout=call.timeout_seconds,
        )
        context.log.info(f"{call.method} {call.url} -> HTTP {response.status_code}")
        response.raise_for_status()
    elif step.assets is not None:
        run_assets(context, step)
    elif step.alert is not None:
        alerts: AlertsResource = context.resources.alerts
        errors = [f"{name}: {value['error']}" for name, value in before.items() if value.get("error")]
        alerts.send(
            Alert(
                title=step.alert.title.format_map(_Texts(variables)),
                severity=step.alert.severity,
                error="\n".join(errors) or None,
                link=alerts.run_url(context.run_id),
                details=[(name, str(value)) for name, value in variables.items()],
            ),
            context.log,
        )
    return None


def dagster_client() -> DagsterGraphQLClient:
    """The Dagster API of the webserver at PLATFORM_DAGSTER_URL (default http://127.0.0.1:3000)."""
    url = urlsplit(os.environ.get(DAGSTER_URL_ENV) or DEFAULT_DAGSTER_URL)
    return DagsterGraphQLClient(
        url.hostname or "127.0.0.1",
        port_number=url.port,
        use_https=url.scheme == "https",
        path_prefix=url.path.rstrip("/"),
    )


def run_assets(context: dg.OpExecutionContext, step: Step) -> None:
    """Launch a run of the step's assets through Dagster's API (queued, pools and run launcher as any run)
    and wait for its end: the step fails when that run does not succeed."""
    call = step.assets
    assert call is not None
    client = dagster_client()
    run_id = client.submit_job_execution(
        call.job,
        repository_location_name=call.location,
        asset_selection=[dg.AssetKey.from_user_string(key) for key in call.select],
        tags={
            PARENT_RUN_TAG: context.run_id,
            TAG_NAME: context.run.tags.get(TAG_NAME, ""),
            PARENT_STEP_TAG: step.name,
        },
    )
    context.log.info(f"step {step.name}: run {run_id} materializes {', '.join(call.select)}")
    deadline = time.monotonic() + call.timeout_seconds
    while (status := client.get_run_status(run_id)) not in _TERMINAL:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"run {run_id} of {', '.join(call.select)} still {status.value} at the timeout"
            )
        time.sleep(call.poll_seconds)
    if status != dg.DagsterRunStatus.SUCCESS:
        raise RuntimeError(f"run {run_id} of {', '.join(call.select)} ended {status.value}")


class _Texts(dict):
    def __init__(self, variables: Mapping[str, Any]):
        super().__init__({name: "" if value is None else value for name, value in variables.items()})


def _substitute(body: Any, variables: Mapping[str, Any]) -> Any:
    """A JSON body with `{name}` strings replaced by the variable's value (whole strings keep the type)."""
    if isinstance(body, dict):
        return {key: _substitute(value, variables) for key, value in body.items()}
    if isinstance(body, list):
        return [_substitute(value, variables) for value in body]
    if isinstance(body, str):
        name = body[1:-1]
        if body.startswith("{") and body.endswith("}") and name in variables:
            return variables[name]
        return body.format_map(_Texts(variables))
    return body


def outcome_op(workflow: Workflow) -> dg.OpDefinition:
    @dg.op(
        name=op_name(workflow, OUTCOME_OP), ins={f"step_{step.name}": dg.In(dict) for step in workflow.steps}
    )
    def _outcome(context: dg.OpExecutionContext, **steps: dict) -> dg.Output:
        failed = [value for value in steps.values() if value["status"] == FAILED]
        statuses = {value["step"]: value["status"] for value in steps.values()}
        if failed:
            raise dg.Failure(
                description=f"workflow {workflow.name}: "
                + "; ".join(f"step {value['step']} failed ({value['error']})" for value in failed),
                metadata={"steps": dg.MetadataValue.json(statuses)},
                allow_retries=False,
            )
        return dg.Output(None, metadata={"steps": dg.MetadataValue.json(statuses)})

    return _outcome


# -- the trigger and the schedules ----------------------------------------------------------------------


def run_variables(workflow: Workflow, values: Mapping[str, Any]) -> dict[str, Any]:
    """Values coerced to the variables' declared types (a date column feeds a string variable)."""
    declared = workflow.document.variables
    return {name: _coerce(declared[name].python_type, value) for name, value in values.items()}


def _coerce(kind: type, value: Any) -> Any:
    if value is None:
        return None
    return str(value) if kind is str else kind(value)


def variable_tags(variables: Mapping[str, Any]) -> dict[str, str]:
    """`workflow/var.<name>` tags (values cut to 200 characters); unset variables have none."""
    return {
        f"{VARIABLE_TAG_PREFIX}{name}": str(value)[:200]
        for name, value in variables.items()
        if value is not None
    }


def run_request(
    workflow: Workflow, variables: Mapping[str, Any], run_key: str | None, extra_tags: Mapping[str, str] = {}
) -> dg.RunRequest:
    values = {**workflow.defaults(), **variables}
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {VARIABLES_OP: {"config": values}}},
        tags={
            **version_tags(workflow),
            **variable_tags(variables),
            **extra_tags,
        },
    )


def trigger_rows(
    workflow: Workflow, warehouse: Warehouse, overrides: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """(row key, variables) per run the trigger asks for, in the query's order, each key once."""
    trigger = workflow.document.trigger
    assert trigger is not None
    declared = workflow.document.variables
    values = {**workflow.defaults(), **overrides}
    if trigger.database == "app_db":
        url = environment.current().app_db_url
        if url is None:
            raise AppDbNotConfigured(
                f"{workflow.source_file}: key 'trigger.database': the application database is not "
                "configured (set PLATFORM_APP_DB_URL)"
            )
        rows = declared_sql.fetch_app_db_rows(url, trigger.sql, values)
    else:
        with warehouse.session(read_only=not trigger.prepare) as session:
            for statement in trigger.prepare:
                declared_sql.execute(session, statement, {})
            rows = declared_sql.fetch_rows(session, trigger.sql, values)
    if not trigger.each_row:
        rows = rows[:1]
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        columns = list(row)
        values = row if trigger.each_row else {trigger.into or columns[0]: row[columns[0]]}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise WorkflowTriggerError(
                f"{workflow.source_file}: key 'trigger.sql': column(s) {', '.join(unknown)} are not declared "
                f"variables (declared: {', '.join(declared) or 'none'}); rename the columns or declare them"
            )
        key_column = trigger.key or columns[0]
        if key_column not in row:
            raise WorkflowTriggerError(
                f"{workflow.source_file}: key 'trigger.key': the query has no column {key_column!r}"
            )
        found.setdefault(str(row[key_column]), run_variables(workflow, values))
    return list(found.items())


def row_state(instance: dg.DagsterInstance, workflow: Workflow, key: str) -> int | None:
    """None when the row needs no run (one succeeded or one is under way); else the next attempt number."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={TAG_NAME: workflow.name, TAG_VERSION: workflow.version, TAG_KEY: key})
    )
    if any(run.status == dg.DagsterRunStatus.SUCCESS or not run.is_finished for run in runs):
        return None
    return len(runs)


def trigger_requests(
    workflow: Workflow, instance: dg.DagsterInstance, warehouse: Warehouse, overrides: Mapping[str, Any] = {}
) -> list[dg.RunRequest]:
    requests_ = []
    for key, variables in trigger_rows(workflow, warehouse, overrides):
        attempt = row_state(instance, workflow, key)
        if attempt is None:
            continue
        requests_.append(
            run_request(
                workflow,
                {**overrides, **variables},
                run_key=f"{workflow.name}:{workflow.version}:{key}:{attempt}",
                extra_tags={TAG_KEY: key, TAG_ATTEMPT: str(attempt)},
            )
        )
    return requests_


def trigger_sensor(workflow: Workflow, job: dg.JobDefinition, running: bool) -> dg.SensorDefinition:
    trigger = workflow.document.trigger
    assert trigger is not None

    @dg.sensor(
        name=f"{job_name(workflow)}_trigger",
        job=job,
        minimum_interval_seconds=trigger.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
        description=f"Runs the trigger query of workflow {workflow.name}: one run per "
        + ("row" if trigger.each_row else "first row")
        + "; a row whose run succeeded is not run again, a failed one is retried.",
    )
    def _trigger(context: dg.SensorEvaluationContext, warehouse: dg.ResourceParam[Warehouse]):
        try:
            requests_ = trigger_requests(workflow, context.instance, warehouse)
        except AppDbNotConfigured as unset:
            return dg.SkipReason(str(unset))
        except Exception as error:
            if not declared_sql.missing_relation(error):
                raise
            return dg.SkipReason(f"the trigger query reads a relation that is not built yet: {error}")
        return requests_ or dg.SkipReason("no trigger row needs a run")

    return _trigger


def workflow_schedule(
    workflow: Workflow, job: dg.JobDefinition, index: int, running: bool
) -> dg.ScheduleDefinition:
    schedule = workflow.document.schedules[index]

    @dg.schedule(
        name=f"{job_name(workflow)}_{schedule.name or index}",
        job=job,
        cron_schedule=schedule.cron,
        execution_timezone=schedule.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
        description=f"Workflow {workflow.name} at {schedule.cron} ({schedule.timezone}) with variables "
        f"{json.dumps(schedule.variables, default=str)}.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, warehouse: dg.ResourceParam[Warehouse]):
        overrides = run_variables(workflow, schedule.variables)
        if workflow.document.trigger:
            return trigger_requests(workflow, context.instance, warehouse, overrides) or dg.SkipReason(
                "no trigger row needs a run"
            )
        return run_request(workflow, overrides, run_key=None)

    return _schedule
