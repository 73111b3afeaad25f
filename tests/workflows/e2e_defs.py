"""Test-only code location for tests/workflows/test_e2e_daemon.py: the declarations in $WORKFLOWS_E2E_DIR.

`reports.yaml` holds the reports component's attributes; `declared/` the workflow documents. Sensors start
RUNNING, with the intervals the documents declare (a few seconds).
"""

import os
from pathlib import Path

import dagster as dg
import yaml

from platform_assets import environment
from platform_assets.automation.alerts import AlertsResource
from platform_assets.components.partitioned_reports import PartitionedReportsComponent, build_reports_defs
from platform_assets.warehouse import DuckDBWarehouse
from platform_assets.workflows.build import build_workflow_defs
from platform_assets.workflows.spec import load_workflows

folder = Path(os.environ["WORKFLOWS_E2E_DIR"])


@dg.asset(key=["e2e", "marker"])
def marker() -> dg.MaterializeResult:
    """What a workflow's `assets` step materializes."""
    return dg.MaterializeResult(metadata={"by": "workflow step"})


reports = PartitionedReportsComponent.model_validate(yaml.safe_load((folder / "reports.yaml").read_text()))

defs = dg.Definitions.merge(
    build_reports_defs(reports.partition_sets, reports.reports, str(folder / "reports.yaml"), running=True),
    *(build_workflow_defs(workflow, running=True) for workflow in load_workflows(folder / "declared")),
    dg.Definitions(
        assets=[marker],
        resources={
            "warehouse": DuckDBWarehouse(path=str(environment.current().duckdb_path)),
            "alerts": AlertsResource(
                channels=[{"type": "slack_webhook", "url_env": "WORKFLOW_TEST_WEBHOOK"}]
            ),
        },
        executor=dg.in_process_executor,
    ),
)
