"""The syncs a workflow's steps run (docs/workflows.md#sync-steps).

A workflow's own syncs are ordinary sync documents (docs/salesforce-syncs.md, docs/hightouch.md) in the
workflows' `syncs_dir`: `salesforce/*.yaml` and `hightouch/*.yaml`. They are not assets, so neither the
cycle nor the automation sends them: only a `salesforce_sync:` or `hightouch_sync:` step does, in the
workflow's run. A Salesforce step runs the platform's sync engine (Bulk API 2.0, change detection,
rejected records kept and retried) on the model rows its `where:` selects, bound to the run's variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from platform_assets import dbt_manifest, environment
from platform_assets.components.hightouch_syncs import run_sync
from platform_assets.components.salesforce_syncs import SYNC_STATE_SCHEMA, report_metadata
from platform_assets.dbt_manifest import DbtModel, resolve_model
from platform_assets.integrations.hightouch.sync_spec import HightouchSync, load_sync_declarations
from platform_assets.integrations.salesforce.sync_engine import SalesforceSyncRun
from platform_assets.integrations.salesforce.sync_spec import SyncSpec, load_sync_specs
from platform_assets.workflows.spec import DOCS_HINT, Workflow, WorkflowConfigError


@dataclass(frozen=True)
class WorkflowSyncs:
    """The sync documents steps may name, by name."""

    folder: Path | None = None
    salesforce: dict[str, tuple[SyncSpec, DbtModel]] = field(default_factory=dict)
    hightouch: dict[str, HightouchSync] = field(default_factory=dict)


def load_workflow_syncs(folder: Path, manifest_path: Path | None = None) -> WorkflowSyncs:
    """`folder`/salesforce and `folder`/hightouch, each optional; models resolve through the prepared dbt
    manifest (default dbt_project/target/manifest.json; where none is prepared, write `schema.name`)."""
    manifest = dbt_manifest.read_if_prepared(manifest_path or dbt_manifest.DEFAULT_MANIFEST_PATH)
    salesforce: dict[str, tuple[SyncSpec, DbtModel]] = {}
    if (folder / "salesforce").is_dir():
        for spec in load_sync_specs(folder / "salesforce", manifest):
            salesforce[spec.name] = (spec, resolve_model(spec.model, manifest))
    hightouch: dict[str, HightouchSync] = {}
    if (folder / "hightouch").is_dir():
        hightouch = {sync.name: sync for sync in load_sync_declarations(folder / "hightouch", manifest)}
    return WorkflowSyncs(folder, salesforce, hightouch)


def check_references(workflow: Workflow, syncs: WorkflowSyncs) -> None:
    """Every sync a step names is declared, and a scoped Salesforce sync can run on a slice."""
    for index, step in enumerate(workflow.steps):
        where = f"{workflow.source_file}: key 'steps[{index}]"
        if step.salesforce_sync is not None:
            name = step.salesforce_sync.sync
            if name not in syncs.salesforce:
                raise WorkflowConfigError(
                    f"{where}.salesforce_sync.sync': no Salesforce sync {name!r} in "
                    f"{_folder(syncs, 'salesforce')} (declared: {', '.join(syncs.salesforce) or 'none'}). "
                    f"{DOCS_HINT}"
                )
            spec = syncs.salesforce[name][0]
            if step.salesforce_sync.where and spec.mode == "mirror":
                raise WorkflowConfigError(
                    f"{where}.salesforce_sync.where': sync {name!r} is a mirror sync, which deletes what "
                    "left its model; a slice of the model cannot tell that. Use upsert or insert. "
                    + DOCS_HINT
                )
        if step.hightouch_sync is not None and step.hightouch_sync.sync not in syncs.hightouch:
            raise WorkflowConfigError(
                f"{where}.hightouch_sync.sync': no Hightouch sync {step.hightouch_sync.sync!r} in "
                f"{_folder(syncs, 'hightouch')} (declared: {', '.join(syncs.hightouch) or 'none'}). "
                + DOCS_HINT
            )


def _folder(syncs: WorkflowSyncs, kind: str) -> str:
    return str(syncs.folder / kind) if syncs.folder else f"the workflows' syncs_dir/{kind}"


def run_salesforce_sync(
    context: dg.OpExecutionContext,
    syncs: WorkflowSyncs,
    call: Any,
    variables: Mapping[str, Any],
) -> dict[str, Any]:
    """Send the selected rows through the sync engine; rejected records fail the step unless `pass`."""
    spec, model = syncs.salesforce[call.sync]
    scope = {column: variables.get(variable) for column, variable in call.where.items()}
    env = environment.current()
    report = SalesforceSyncRun(
        spec=spec,
        warehouse=context.resources.warehouse,
        client=context.resources.salesforce.get_client(),
        sync_schema=env.schema(SYNC_STATE_SCHEMA),
        model_schema=env.schema(model.schema),
        model_table=model.table,
        run_id=context.run_id,
        schema_prefix=env.schema(""),
        scope=scope,
    ).run()
    metadata = report_metadata(report)
    context.log.info(
        f"Salesforce sync {spec.name} where {scope}: planned {dict(report.planned)}, "
        f"succeeded {dict(report.succeeded)}, failed {dict(report.failed)}"
    )
    rejected = sum(report.failed.values())
    if rejected and call.on_rejected == "fail":
        raise RuntimeError(
            f"Salesforce rejected {rejected} {spec.object} record(s) of sync {spec.name} where {scope}: "
            f"{report.failure_sample[:3]}. They are kept in sync_failures and sent again by the next run."
        )
    return metadata


def run_hightouch_sync(context: dg.OpExecutionContext, syncs: WorkflowSyncs, call: Any) -> dict[str, Any]:
    """Trigger the Hightouch sync and follow its run (as its asset would); a failed run fails the step."""
    result = run_sync(context, context.resources.hightouch, syncs.hightouch[call.sync])  # type: ignore[arg-type]
    return dict(result.metadata or {})
