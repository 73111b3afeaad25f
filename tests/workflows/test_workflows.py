"""Workflows declared in YAML, run on a real Dagster instance against the real DuckDB warehouse.

The workflow fulfils orders (a shape the sample company does not have): the trigger query gives one run
per order; `charge` fails for an order whose amount is not a number, which runs the failure path (mark
failed, alert) while the other order is marked done; the completion step records both outcomes.
"""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.automation.alerts import AlertsResource
from platform_assets.warehouse import DuckDBWarehouse
from platform_assets.workflows import build
from platform_assets.workflows.spec import WorkflowConfigError, load_workflow, load_workflows

from .conftest import Receiver, sql

WORKFLOW = """\
description: Fulfils each order; a failed one is marked failed, alerted and retried on the next tick.
variables:
  order_id: {type: string, description: the order this run fulfils}
  label: standard
trigger:
  sql: select order_id from fulfil.orders order by order_id   # every order: the runs decide what is done
  each_row: true
schedules:
  - {name: priority, cron: "0 6 * * *", variables: {label: priority}}
steps:
  - name: stage
    sql: insert into fulfil.log values (:order_id, 'stage', :label)
  - name: charge
    sql: >-
      insert into fulfil.charges select order_id, cast(amount as decimal(10, 2)) from fulfil.orders
      where order_id = :order_id
  - name: notify
    http: {url: "<url>/notify/{order_id}", json: {order: "{order_id}", label: "{label}"}}
  - name: mark_done
    sql: update fulfil.orders set status = 'done' where order_id = :order_id
  - name: mark_failed
    after: [stage, charge, notify, mark_done]
    when: failure
    require: any
    sql: update fulfil.orders set status = 'failed' where order_id = :order_id
  - name: alert
    after: [stage, charge, notify, mark_done]
    when: failure
    require: any
    alert: {title: "Order {order_id} was not fulfilled"}
  - name: record_outcome
    after: [mark_done, mark_failed]
    when: completion
    require: any
    sql: insert into fulfil.outcomes select order_id, status from fulfil.orders where order_id = :order_id
"""


@pytest.fixture
def fulfil(warehouse: DuckDBWarehouse) -> DuckDBWarehouse:
    sql(
        warehouse,
        "create schema fulfil",
        "create table fulfil.orders (order_id varchar, amount varchar, status varchar default 'new')",
        "insert into fulfil.orders (order_id, amount) values ('o1', '12.50'), ('o2', 'n/a')",
        "create table fulfil.log (order_id varchar, step varchar, label varchar)",
        "create table fulfil.charges (order_id varchar, amount decimal(10, 2))",
        "create table fulfil.outcomes (order_id varchar, status varchar)",
    )
    return warehouse


@pytest.fixture
def workflow_file(tmp_path: Path, receiver: Receiver) -> Path:
    folder = tmp_path / "declared"
    folder.mkdir()
    path = folder / "fulfil.yaml"
    path.write_text(WORKFLOW.replace("<url>", receiver.url))
    return path


@pytest.fixture
def defs(
    workflow_file: Path, fulfil: DuckDBWarehouse, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> dg.Definitions:
    monkeypatch.setenv("WORKFLOW_TEST_WEBHOOK", f"{receiver.url}/hook")
    alerts = AlertsResource(channels=[{"type": "slack_webhook", "url_env": "WORKFLOW_TEST_WEBHOOK"}])
    (workflow,) = load_workflows(workflow_file.parent)
    return dg.Definitions.merge(
        build.build_workflow_defs(workflow), dg.Definitions(resources={"warehouse": fulfil, "alerts": alerts})
    )


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"warehouse": defs.resources["warehouse"]}
    )
    result = defs.resolve_sensor_def("workflow_fulfil_trigger")(context)
    return [] if isinstance(result, dg.SkipReason) else list(result)


def _launch(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest):
    """Run a request as the daemon would launch it: its run config and tags (run key included)."""
    tags = {**request.tags, "dagster/run_key": request.run_key} if request.run_key else request.tags
    return defs.resolve_job_def("workflow_fulfil").execute_in_process(
        run_config=request.run_config, tags=tags, instance=instance, raise_on_error=False
    )


def test_each_trigger_row_runs_with_its_id_and_failures_take_the_failure_path(
    defs: dg.Definitions, instance: dg.DagsterInstance, fulfil: DuckDBWarehouse, receiver: Receiver
) -> None:
    requests = _tick(defs, instance)
    assert [r.tags[build.TAG_KEY] for r in requests] == ["o1", "o2"]
    assert [r.run_config["ops"]["variables"]["config"]["order_id"] for r in requests] == ["o1", "o2"]
    results = {r.tags[build.TAG_KEY]: _launch(defs, instance, r) for r in requests}

    assert results["o1"].success and not results["o2"].success
    assert sql(fulfil, "select order_id, status from fulfil.orders order by 1") == [
        ("o1", "done"),
        ("o2", "failed"),
    ]
    # The completion step ran in both runs, after the success path and after the failure path.
    assert sql(fulfil, "select * from fulfil.outcomes order by 1") == [("o1", "done"), ("o2", "failed")]
    assert sql(fulfil, "select order_id from fulfil.charges") == [("o1",)]
    notified = [body for path, body in receiver.received if path.startswith("/notify/")]
    assert notified == [{"order": "o1", "label": "standard"}]  # o2 stopped at charge: never notified
    (alert,) = [body["text"] for path, body in receiver.received if path == "/hook"]
    assert "Order o2 was not fulfilled" in alert and "charge: ConversionException" in alert

    o2 = instance.get_run_by_id(results["o2"].run_id)
    assert o2.tags[f"{build.STEP_TAG_PREFIX}charge"] == "failed"
    assert o2.tags[f"{build.STEP_TAG_PREFIX}mark_done"] == "skipped"
    assert o2.tags[f"{build.STEP_TAG_PREFIX}record_outcome"] == "succeeded"
    assert o2.tags[f"{build.VARIABLE_TAG_PREFIX}order_id"] == "o2"

    # Next tick: nothing for o1 (succeeded), o2 again as a new attempt with a new run key.
    (retry,) = _tick(defs, instance)
    assert retry.tags[build.TAG_KEY] == "o2" and retry.tags[build.TAG_ATTEMPT] == "1"
    assert retry.run_key != requests[1].run_key
    sql(fulfil, "update fulfil.orders set amount = '3' where order_id = 'o2'")
    assert _launch(defs, instance, retry).success
    assert sql(fulfil, "select status from fulfil.orders where order_id = 'o2'") == [("done",)]
    assert _tick(defs, instance) == []  # both done: the next tick launches nothing


def test_runs_record_the_workflow_version(
    defs: dg.Definitions, instance: dg.DagsterInstance, workflow_file: Path
) -> None:
    (request, _) = _tick(defs, instance)
    run = instance.get_run_by_id(_launch(defs, instance, request).run_id)
    workflow = load_workflow(workflow_file)
    assert run.tags[build.TAG_NAME] == "fulfil"
    assert run.tags[build.TAG_VERSION] == workflow.version
    assert len(run.tags[build.TAG_REVISION]) == 40  # the repository's git revision
    workflow_file.write_text(workflow_file.read_text() + "# a changed declaration is a new version\n")
    assert load_workflow(workflow_file).version != workflow.version


def test_a_variable_changed_in_run_config_changes_the_run(
    defs: dg.Definitions, instance: dg.DagsterInstance, fulfil: DuckDBWarehouse, receiver: Receiver
) -> None:
    job = defs.resolve_job_def("workflow_fulfil")
    # The launchpad's run config: the defaults, here with the label changed and an order chosen.
    config = {"ops": {"variables": {"config": {"order_id": "o1", "label": "rush"}}}}
    assert job.execute_in_process(run_config=config, instance=instance).success
    assert job.execute_in_process(  # without run config: the declared defaults
        run_config={"ops": {"variables": {"config": {"order_id": "o1"}}}}, instance=instance
    ).success
    assert sql(fulfil, "select label from fulfil.log order by rowid") == [("rush",), ("standard",)]

    # A schedule overrides variables too: its runs carry the schedule's label.
    schedule = defs.resolve_schedule_def("workflow_fulfil_priority")
    context = dg.build_schedule_context(instance=instance, resources={"warehouse": fulfil})
    runs = list(schedule.evaluate_tick(context).run_requests or [])
    assert {r.run_config["ops"]["variables"]["config"]["label"] for r in runs} == {"priority"}


def test_the_first_column_of_the_first_row_is_the_default_variable(
    tmp_path: Path, fulfil: DuckDBWarehouse, instance: dg.DagsterInstance
) -> None:
    path = tmp_path / "oldest.yaml"
    path.write_text(
        textwrap.dedent("""\
        variables: {order_id: null, label: standard}
        trigger: {sql: "select order_id, amount from fulfil.orders where status = :label order by 1 desc"}
        steps:
          - {name: stage, sql: "insert into fulfil.log values (:order_id, 'stage', 'first')"}
        """)
    )
    sql(fulfil, "update fulfil.orders set status = 'standard'")
    workflow = load_workflow(path)
    (request,) = build.trigger_requests(workflow, instance, fulfil)
    assert request.run_config["ops"]["variables"]["config"]["order_id"] == "o2"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("steps: []", "key 'steps': a workflow has at least one step"),
        (
            "steps: [{name: a}]",
            "key 'steps.0': Value error, a step has exactly one of sql, http, alert, assets",
        ),
        ("steps: [{name: a, sql: 'select :nope'}]", r"key 'steps\[0\].sql': unknown parameter\(s\) :nope"),
        (
            "steps: [{name: a, sql: 'select 1'}, {name: b, after: [c], sql: 'select 1'}]",
            r"key 'steps\[1\].after': 'c' is not an earlier step",
        ),
        (
            "steps: [{name: a, sql: 'select 1'}, {name: b, when: failure, sql: 'select 1'}]",
            r"key 'steps\[1\].after': a step with `when: failure` names its predecessors",
        ),
        (
            "steps: [{name: a, http: {url: 'http://x/{id}'}}]",
            r"key 'steps\[0\].http.url': unknown variable\(s\) id",
        ),
        (
            "schedules: [{cron: '0 * * * *', variables: {x: 1}}]\nsteps: [{name: a, sql: 'select 1'}]",
            r"key 'schedules\[0\].variables.x': not a declared variable",
        ),
        ("steps: [{name: a, sql: 'select 1', when: often}]", "key 'steps.0.when'"),
        ("trigger: {sql: 'select 1', every: 5}\nsteps: [{name: a, sql: 'select 1'}]", "key 'trigger.every'"),
    ],
)
def test_mistakes_fail_at_load_naming_the_file_and_key(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(document)
    with pytest.raises(WorkflowConfigError, match=message) as error:
        load_workflow(path)
    assert str(path) in str(error.value)


def test_the_trigger_skips_until_its_tables_are_built_and_fails_on_other_errors(
    defs: dg.Definitions, instance: dg.DagsterInstance, fulfil: DuckDBWarehouse
) -> None:
    sql(fulfil, "alter table fulfil.orders rename to orders_gone")
    context = dg.build_sensor_context(instance=instance, definitions=defs, resources={"warehouse": fulfil})
    sensor = defs.resolve_sensor_def("workflow_fulfil_trigger")
    skipped = sensor(context)
    assert isinstance(skipped, dg.SkipReason) and "not built yet" in str(skipped.skip_message)
    sql(fulfil, "create view fulfil.orders as select cast('x' as integer) as order_id")
    with pytest.raises(Exception, match="Conversion Error"):
        sensor(context)


def test_an_assets_step_fails_its_run_when_dagster_cannot_be_reached(
    tmp_path: Path, fulfil: DuckDBWarehouse, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv(build.DAGSTER_URL_ENV, f"http://127.0.0.1:{sock.getsockname()[1]}")
    path = tmp_path / "refresh.yaml"
    path.write_text(
        textwrap.dedent("""\
        steps:
          - {name: refresh, assets: {select: [shop/orders]}}
          - name: on_failure
            after: [refresh]
            when: failure
            sql: insert into fulfil.log values ('-', 'f', '')
        """)
    )
    defs = dg.Definitions.merge(
        build.build_workflow_defs(load_workflow(path)), dg.Definitions(resources={"warehouse": fulfil})
    )
    result = defs.resolve_job_def("workflow_refresh").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    assert sql(fulfil, "select step from fulfil.log") == [("f",)]
    assert instance.get_run_by_id(result.run_id).tags[f"{build.STEP_TAG_PREFIX}refresh"] == "failed"
