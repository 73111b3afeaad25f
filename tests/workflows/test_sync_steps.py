"""`salesforce_sync` steps on a shape the sample does not have: a shop's leads, one region per run.

The step runs the real sync engine against the Salesforce sandbox (loopback) on the rows of its `where:`;
other regions' rows and state are left alone, and a re-run sends nothing (change detection).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from local_stack.sandbox.salesforce import SandboxHandle, start_sandbox
from platform_assets.integrations.salesforce.resource import SalesforceResource
from platform_assets.warehouse import DuckDBWarehouse
from platform_assets.workflows import build
from platform_assets.workflows.spec import WorkflowConfigError, load_workflow
from platform_assets.workflows.syncs import load_workflow_syncs

from .conftest import sql

SYNC = """\
name: shop_leads
model: shop.act_shop_leads
object: Lead
mode: {mode}
external_id_field: Signup_Id__c
primary_key: lead_key
mapping: {{Signup_Id__c: Signup_Id__c, LastName: LastName, Company: Company}}
"""
WORKFLOW = """\
variables: {region: eu}
steps:
  - name: push
    salesforce_sync: {sync: shop_leads, where: {region: region}}
"""


def _folder(tmp_path: Path, mode: str = "upsert") -> Path:
    (tmp_path / "syncs" / "salesforce").mkdir(parents=True)
    (tmp_path / "syncs" / "salesforce" / "shop_leads.yaml").write_text(SYNC.format(mode=mode))
    (tmp_path / "flows").mkdir()
    return tmp_path


@pytest.fixture
def org(tmp_path: Path) -> Iterator[SandboxHandle]:
    with start_sandbox(db_path=tmp_path / "org.sqlite") as handle:
        yield handle


def test_a_sync_step_sends_only_the_rows_of_its_run(
    tmp_path: Path, org: SandboxHandle, warehouse: DuckDBWarehouse, instance: dg.DagsterInstance
) -> None:
    sql(
        warehouse,
        "create schema shop",
        "create table shop.act_shop_leads as select 'k' || i as lead_key, 'k' || i as Signup_Id__c, "
        "'Buyer ' || i as LastName, 'Shop' as Company, case when i % 3 = 0 then 'us' else 'eu' end as region "
        "from range(1, 10) t(i)",
    )
    folder = _folder(tmp_path)
    (folder / "flows" / "regional.yaml").write_text(WORKFLOW)
    workflow = load_workflow(folder / "flows" / "regional.yaml")
    salesforce = SalesforceResource(
        login_url=org.url, client_id=org.client_id, client_secret=org.client_secret, poll_interval=0.02
    )
    syncs = load_workflow_syncs(folder / "syncs", folder / "no_manifest.json")
    defs = dg.Definitions.merge(
        build.build_workflow_defs(workflow, syncs=syncs),
        dg.Definitions(resources={"warehouse": warehouse, "salesforce": salesforce}),
    )
    job = defs.resolve_job_def("workflow_regional")

    def run(region: str) -> dg.ExecuteInProcessResult:
        return job.execute_in_process(
            run_config={"ops": {"variables": {"config": {"region": region}}}},
            instance=instance,
        )

    def leads() -> list[str]:
        rows = org.sandbox.org.conn.execute('SELECT "Signup_Id__c" FROM "sobject_Lead" ORDER BY 1').fetchall()
        return [row[0] for row in rows]

    first = run("eu")
    assert leads() == ["k1", "k2", "k4", "k5", "k7", "k8"]
    assert first.output_for_node("push")["status"] == "succeeded"
    assert run("eu").success and org.count("Lead") == 6  # nothing changed: nothing sent, nothing doubled
    assert sql(warehouse, "select planned_added from platform_sync.sync_runs order by started_at") == [
        (6,),
        (0,),
    ]
    run("us")
    assert leads() == [f"k{i}" for i in range(1, 10)]


@pytest.mark.parametrize(
    ("mode", "step", "message"),
    [
        ("upsert", "{sync: nope}", r"key 'steps\[0\].salesforce_sync.sync': no Salesforce sync 'nope'"),
        (
            "mirror",
            "{sync: shop_leads, where: {region: region}}",
            r"key 'steps\[0\].salesforce_sync.where': sync 'shop_leads' is a mirror sync",
        ),
        (
            "upsert",
            "{sync: shop_leads, where: {region: country}}",
            r"key 'steps\[0\].salesforce_sync.where.region': 'country' is not a declared variable",
        ),
    ],
)
def test_sync_step_mistakes_fail_at_load_naming_the_file_and_key(
    tmp_path: Path, mode: str, step: str, message: str
) -> None:
    folder = _folder(tmp_path, mode)
    path = folder / "flows" / "broken.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        variables: {{region: eu}}
        steps: [{{name: push, salesforce_sync: {step}}}]
        """)
    )
    with pytest.raises(WorkflowConfigError, match=message) as error:
        build.build_workflow_defs(
            load_workflow(path), syncs=load_workflow_syncs(folder / "syncs", folder / "no_manifest.json")
        )
    assert str(path) in str(error.value)
