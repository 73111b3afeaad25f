"""End to end with the real processes: a code server (`dagster api grpc`) and `dagster-daemon` on a
temporary DAGSTER_HOME, nothing launched by hand. The partition sensor keeps the tenants in step with SQL
and runs each new one (a broken tenant fails only its own run); the workflow's trigger runs each order,
the failing one takes its failure path and is retried on later ticks until it succeeds, then nothing more.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_assets.environment import PROJECT_ROOT
from platform_assets.warehouse import DuckDBWarehouse
from platform_assets.workflows import build

from .conftest import Receiver, sql
from .test_workflows import WORKFLOW

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
TIMEOUT = 300
INSTANCE_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config: {dequeue_interval_seconds: 1}
sensors: {use_threads: true, num_workers: 4}
telemetry: {enabled: false}
"""
REFRESH = """\
description: Materializes an asset, then records that it did.
steps:
  - {name: refresh, assets: {select: [e2e/marker], location: workflows_e2e, poll_seconds: 1}}
  - {name: record, sql: "insert into fulfil.log values ('-', 'refreshed', 'assets step')"}
"""
REPORTS = {
    "partition_sets": {
        "tenants": {
            "query": "select tenant_id from shop.tenants where active order by 1",
            "interval_seconds": 3,
        }
    },
    "reports": {
        "tenant_revenue": {
            "partition_set": "tenants",
            "schema": "customer_reports",
            "sql": "select count(*) as orders, sum(cast(amount as decimal(12, 2))) as revenue "
            "from shop.orders where tenant_id = :partition_key",
        }
    },
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_for(what: str, predicate: Callable[[], object], logs: list[Path], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for log in logs if log.exists())
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


@pytest.fixture
def declarations(tmp_path: Path, receiver: Receiver, warehouse: DuckDBWarehouse) -> Path:
    folder = tmp_path / "e2e"
    (folder / "declared").mkdir(parents=True)
    (folder / "reports.yaml").write_text(yaml.safe_dump(REPORTS))
    workflow = WORKFLOW.replace("<url>", receiver.url).replace(
        "  each_row: true\n", "  each_row: true\n  interval_seconds: 3\n"
    )
    (folder / "declared" / "fulfil.yaml").write_text(workflow)
    (folder / "declared" / "refresh.yaml").write_text(REFRESH)
    sql(
        warehouse,
        "create schema shop",
        "create table shop.tenants (tenant_id varchar, active boolean)",
        "insert into shop.tenants values ('acme', true), ('globex', true), ('hooli', true), "
        "('initech', false)",
        "create table shop.orders (tenant_id varchar, amount varchar)",
        "insert into shop.orders values ('acme', '10.50'), ('globex', '7'), ('hooli', 'n/a')",
        "create schema fulfil",
        "create table fulfil.orders (order_id varchar, amount varchar, status varchar default 'new')",
        "insert into fulfil.orders (order_id, amount) values ('o1', '12.50'), ('o2', 'n/a')",
        "create table fulfil.log (order_id varchar, step varchar, label varchar)",
        "create table fulfil.charges (order_id varchar, amount decimal(10, 2))",
        "create table fulfil.outcomes (order_id varchar, status varchar)",
    )
    return folder


@pytest.fixture
def running(
    tmp_path: Path, declarations: Path, receiver: Receiver, local_platform, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dg.DagsterInstance, list[Path]]]:
    home = tmp_path / "daemon_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    port = _free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        textwrap.dedent(f"""\
        load_from:
          - grpc_server: {{host: 127.0.0.1, port: {port}, location_name: workflows_e2e}}
        """)
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "WORKFLOWS_E2E_DIR": str(declarations),
        "WORKFLOW_TEST_WEBHOOK": f"{receiver.url}/hook",
    }
    ui_port = _free_port()
    env["PLATFORM_DAGSTER_URL"] = f"http://127.0.0.1:{ui_port}"
    monkeypatch.setenv("PLATFORM_DAGSTER_URL", env["PLATFORM_DAGSTER_URL"])  # this process's client too
    logs = [tmp_path / "code_server.log", tmp_path / "daemon.log", tmp_path / "webserver.log"]
    code_server = subprocess.Popen(
        [
            str(BIN / "dagster"),
            "api",
            "grpc",
            "-f",
            str(Path(__file__).with_name("e2e_defs.py")),
            "-d",
            str(PROJECT_ROOT),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=logs[0].open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    daemon = webserver = None
    try:
        _wait_for("the code server", lambda: _port_open(port) or code_server.poll() is not None, logs, 120)
        assert code_server.poll() is None, logs[0].read_text()
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=tmp_path,
            env=env,
            stdout=logs[1].open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        webserver = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(ui_port)],
            cwd=tmp_path,
            env=env,
            stdout=logs[2].open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_for("the webserver", lambda: _port_open(ui_port) or webserver.poll() is not None, logs, 120)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance, logs
    finally:
        for process in (webserver, daemon, code_server):
            if process is not None:
                _stop(process)


def _runs(instance: dg.DagsterInstance, **tags: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags=tags)))


def _finished(instance: dg.DagsterInstance, **tags: str) -> dict[str, str]:
    """Partition or row key -> status of its finished runs (latest first), over the runs with these tags."""
    found: dict[str, list[str]] = {}
    for run in _runs(instance, **tags):
        if run.is_finished:
            key = run.tags.get("dagster/partition") or run.tags.get("workflow/key") or "?"
            found.setdefault(key, []).append(run.status.value)
    return {key: ",".join(statuses) for key, statuses in found.items()}


def test_the_daemon_keeps_partitions_in_step_and_runs_workflows_with_retries(
    running: tuple[dg.DagsterInstance, list[Path]], warehouse: DuckDBWarehouse, receiver: Receiver
) -> None:
    instance, logs = running

    # The first tick adds the three active tenants and runs each; hooli's data breaks its own run only.
    _wait_for(
        "one finished report run per tenant",
        lambda: {"acme", "globex", "hooli"} <= set(_finished(instance)),
        logs,
    )
    assert instance.get_dynamic_partitions("tenants") == ["acme", "globex", "hooli"]
    statuses = _finished(instance)
    assert (statuses["acme"], statuses["globex"], statuses["hooli"]) == ("SUCCESS", "SUCCESS", "FAILURE")

    # A tenant leaves, another arrives: the next ticks delete and add them, and run only the new one.
    sql(warehouse, "update shop.tenants set active = not active where tenant_id in ('acme', 'initech')")
    _wait_for(
        "the new tenant's report",
        lambda: _finished(instance).get("initech") == "SUCCESS",
        logs,
    )
    assert sorted(instance.get_dynamic_partitions("tenants")) == ["globex", "hooli", "initech"]

    # The workflow: o1 succeeds once; o2 fails, takes its failure path, and is retried on later ticks.
    def retried() -> bool:
        workflow = _finished(instance, **{"workflow/name": "fulfil"})
        return workflow.get("o1") == "SUCCESS" and workflow.get("o2", "").count("FAILURE") >= 2

    _wait_for("o1 done and o2 failed twice", retried, logs)
    assert sql(warehouse, "select status from fulfil.orders order by order_id") == [("done",), ("failed",)]
    assert any(
        "Order o2 was not fulfilled" in body["text"] for path, body in receiver.received if path == "/hook"
    )

    sql(warehouse, "update fulfil.orders set amount = '3' where order_id = 'o2'")
    _wait_for(
        "o2 succeeding on a retry",
        lambda: _finished(instance, **{"workflow/name": "fulfil"}).get("o2", "").startswith("SUCCESS"),
        logs,
    )
    time.sleep(10)  # more ticks: nothing is launched again for a row whose run succeeded
    runs = _runs(instance, **{"workflow/name": "fulfil"})
    assert all(run.is_finished for run in runs)
    assert [run.tags["workflow/key"] for run in runs if run.status == dg.DagsterRunStatus.SUCCESS] == [
        "o2",
        "o1",
    ]
    assert sql(warehouse, "select order_id, status from fulfil.outcomes order by rowid")[0] == ("o1", "done")


def test_an_assets_step_materializes_through_a_run_of_its_own(
    running: tuple[dg.DagsterInstance, list[Path]], warehouse: DuckDBWarehouse
) -> None:
    instance, logs = running
    client = build.dagster_client()
    run_id = client.submit_job_execution("workflow_refresh", repository_location_name="workflows_e2e")
    _wait_for("the workflow run", lambda: instance.get_run_by_id(run_id).is_finished, logs)
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    (child,) = _runs(instance, **{build.PARENT_RUN_TAG: run_id})
    assert child.status == dg.DagsterRunStatus.SUCCESS and child.tags[build.PARENT_STEP_TAG] == "refresh"
    assert len(instance.fetch_materializations(dg.AssetKey(["e2e", "marker"]), limit=10).records) == 1
    assert sql(warehouse, "select step from fulfil.log where order_id = '-'") == [("refreshed",)]
