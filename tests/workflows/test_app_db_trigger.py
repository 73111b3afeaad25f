"""A workflow whose trigger query reads the application database (real PostgreSQL), not the warehouse.

The shape is one the sample company does not have: support tickets escalated in the application, one run
per ticket, with a LIKE pattern (a `%` that psycopg2 must not take for a placeholder) and a variable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from platform_assets.warehouse import DuckDBWarehouse
from platform_assets.workflows import build
from platform_assets.workflows.spec import WorkflowConfigError, load_workflow

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_reachable() -> bool:
    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=2).close()
        return True
    except psycopg2.OperationalError:
        return False


requires_postgres = pytest.mark.skipif(
    not _postgres_reachable(), reason=f"PostgreSQL is not reachable at {POSTGRES_URL} (CI has it)"
)

DOCUMENT = """\
variables: {ticket_id: null, queue: support}
trigger:
  database: app_db
  sql: >-
    select ticket_id from <schema>.tickets
    where queue = :queue and subject like 'URGENT%' and status = 'escalated' order by ticket_id
  each_row: true
steps:
  - {name: log, sql: "select :ticket_id"}
"""


@pytest.fixture
def app_schema(local_platform: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A schema of its own in the test database, configured as the application database (after
    local_platform, which clears PLATFORM_APP_DB_URL)."""
    schema = f"wf_app_{uuid.uuid4().hex[:8]}"
    with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
        cursor.execute(f"create schema {schema}")
        cursor.execute(
            f"create table {schema}.tickets (ticket_id text, queue text, subject text, status text)"
        )
        cursor.execute(
            f"insert into {schema}.tickets values ('t1', 'support', 'URGENT: outage', 'escalated'),"
            " ('t2', 'support', 'URGENT: login', 'escalated'),"
            " ('t3', 'billing', 'URGENT: refund', 'escalated'),"
            " ('t4', 'support', 'question', 'escalated'), ('t5', 'support', 'URGENT: bug', 'open')"
        )
    monkeypatch.setenv("PLATFORM_APP_DB_URL", POSTGRES_URL)
    yield schema
    with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
        cursor.execute(f"drop schema {schema} cascade")


def _workflow(tmp_path: Path, schema: str, document: str = DOCUMENT):
    path = tmp_path / "escalations.yaml"
    path.write_text(document.replace("<schema>", schema))
    return load_workflow(path)


@requires_postgres
def test_one_run_per_row_of_the_application_database(
    tmp_path: Path, app_schema: str, warehouse: DuckDBWarehouse, instance: dg.DagsterInstance
) -> None:
    workflow = _workflow(tmp_path, app_schema)
    requests = build.trigger_requests(workflow, instance, warehouse)
    assert [r.run_config["ops"]["variables"]["config"]["ticket_id"] for r in requests] == ["t1", "t2"]
    billing = build.trigger_requests(workflow, instance, warehouse, {"queue": "billing"})
    assert [r.run_config["ops"]["variables"]["config"]["ticket_id"] for r in billing] == ["t3"]


@requires_postgres
def test_the_application_database_is_only_read(
    tmp_path: Path, app_schema: str, warehouse: DuckDBWarehouse, instance: dg.DagsterInstance
) -> None:
    writes = DOCUMENT.replace(
        "sql: >-", "sql: >-\n    with gone as (delete from <schema>.tickets returning *)"
    ).replace("select ticket_id from <schema>.tickets", "select ticket_id from gone")
    workflow = _workflow(tmp_path, app_schema, writes)
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        build.trigger_requests(workflow, instance, warehouse)
    with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
        cursor.execute(f"select count(*) from {app_schema}.tickets")
        assert cursor.fetchone() == (5,)


def test_the_sensor_skips_naming_the_setting_while_no_application_database_is_configured(
    tmp_path: Path, warehouse: DuckDBWarehouse, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLATFORM_APP_DB_URL", raising=False)
    workflow = _workflow(tmp_path, "app")
    defs = dg.Definitions.merge(
        build.build_workflow_defs(workflow), dg.Definitions(resources={"warehouse": warehouse})
    )
    context = dg.build_sensor_context(instance=instance, definitions=defs, resources={"warehouse": warehouse})
    skipped = defs.resolve_sensor_def("workflow_escalations_trigger")(context)
    assert isinstance(skipped, dg.SkipReason)
    assert "trigger.database" in str(skipped.skip_message) and "PLATFORM_APP_DB_URL" in str(
        skipped.skip_message
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  prepare: ['create table if not exists x (a int)']\n", "key 'trigger.prepare': the application"),
        ("", r"key 'trigger.sql': \{schema:…\} names warehouse schemas"),
    ],
)
def test_application_database_trigger_mistakes_fail_at_load(tmp_path: Path, extra: str, message: str) -> None:
    document = DOCUMENT.replace("  each_row: true\n", "  each_row: true\n" + extra)
    if not extra:
        document = document.replace("<schema>.tickets", "{schema:app}.tickets")
    path = tmp_path / "escalations.yaml"
    path.write_text(document.replace("<schema>", "app"))
    with pytest.raises(WorkflowConfigError, match=message):
        load_workflow(path)
