"""Workflows declared in YAML: one document per workflow in `workflows_dir` (docs/workflows.md).

Each document becomes the job `workflow_<name>` (an op per step, variables as run config), the sensor
`workflow_<name>_trigger` when it declares a trigger query, and one schedule per declared schedule. The
documents are read and checked by platform_assets/workflows/spec.py; a mistake fails the load naming the
file and the key.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from platform_assets import environment
from platform_assets.workflows.build import build_workflow_defs
from platform_assets.workflows.spec import load_workflows
from platform_assets.workflows.syncs import load_workflow_syncs


class WorkflowsComponent(dg.Component, dg.Model, dg.Resolvable):
    """A job, a trigger sensor and schedules per workflow document."""

    workflows_dir: str = "declared"
    """Folder of workflow documents, relative to this defs.yaml (or absolute)."""
    syncs_dir: str = "syncs"
    """Folder of the syncs steps run (`salesforce/*.yaml`, `hightouch/*.yaml`), relative to this defs.yaml."""
    running_by_default_in: list[environment.Mode] = Field(
        default_factory=lambda: [environment.Mode.LOCAL],
        description="Environments where the trigger sensors and schedules start RUNNING.",
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        running = environment.current().mode in self.running_by_default_in
        workflows = load_workflows(Path(context.path) / self.workflows_dir)
        syncs = load_workflow_syncs(Path(context.path) / self.syncs_dir)
        return dg.Definitions.merge(
            *(build_workflow_defs(workflow, running, syncs) for workflow in workflows)
        )
