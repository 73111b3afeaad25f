"""Hightouch syncs as assets: one YAML document per sync under defs/activation/hightouch/syncs/.

Each document becomes the asset `["hightouch", <name>]` (group `activation`, kinds {"hightouch",
<destination kind>}, tag layer=activation) that depends on the dbt model(s) the sync reads.
Materializing it triggers the sync through the Hightouch REST API, follows the run to its end and
reports Hightouch's row counts. The documents are read by integrations/hightouch/sync_spec.py.

Retries: the assets carry the component's `retry:` policy (platform_assets/components/retries.py) for
the failures `is_transient` accepts only (API 429/5xx after the client's own retries, network errors);
a failed or rejected Hightouch run, a run timeout or a config error fails once, without a retry.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import requests

from platform_assets import dbt_manifest, environment
from platform_assets.components.retries import RetryDecl, only_transient_retried, retry_policy
from platform_assets.integrations.hightouch.client import (
    FAILED_STATUSES,
    HightouchApiError,
    HightouchError,
    HightouchRun,
)
from platform_assets.integrations.hightouch.resource import HightouchResource
from platform_assets.integrations.hightouch.sync_spec import (
    DOCS_HINT,
    HightouchSync,
    HightouchSyncConfigError,
    load_sync_declarations,
)
from platform_assets.resources import hightouch_resource


def is_transient(error: BaseException) -> bool:
    """Whether the retry policy may re-run the sync after `error`: the API busy or down (429, 5xx) or
    the network. Not a run timeout: the run goes on in Hightouch, and a retry would trigger another."""
    if isinstance(error, HightouchApiError):
        return error.retryable
    return isinstance(error, requests.ConnectionError | requests.Timeout)


CHECK_NAME = "no_rejected_rows"
"""The non-blocking check on every Hightouch sync: rows the destination rejected in the latest run (a run
that passes with a warning). Like a Salesforce sync's check, the policy's `retry_failed_checks` runs the
sync again while it fails."""


# -- the component ----------------------------------------------------------------------------------


class HightouchSyncsComponent(dg.Component, dg.Model, dg.Resolvable):
    """One asset per Hightouch sync document in `syncs_dir`, plus the `hightouch` resource."""

    syncs_dir: str = "syncs"
    """Folder of sync documents, relative to this defs.yaml (or absolute)."""
    dbt_manifest_path: str | None = None
    """The prepared dbt manifest that resolves each model to its asset key (default
    dbt_project/target/manifest.json). Where it is not prepared, models must be written `schema.name`."""
    poll_interval_seconds: float = 2.0
    poll_timeout_seconds: float = 3600.0
    backoff_initial_seconds: float = 0.5
    max_attempts: int = 6
    retry: RetryDecl | None = RetryDecl()
    """Dagster retry policy for transient failures (`is_transient`); `null` turns retries off."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        manifest = dbt_manifest.read_if_prepared(
            Path(self.dbt_manifest_path) if self.dbt_manifest_path else dbt_manifest.DEFAULT_MANIFEST_PATH
        )
        syncs = load_sync_declarations(Path(context.path) / self.syncs_dir, manifest)
        resource = hightouch_resource(
            poll_interval_seconds=self.poll_interval_seconds,
            poll_timeout_seconds=self.poll_timeout_seconds,
            backoff_initial_seconds=self.backoff_initial_seconds,
            max_attempts=self.max_attempts,
        )
        policy = retry_policy(self.retry)
        return dg.Definitions(
            assets=[sync_asset(sync, policy) for sync in syncs], resources={"hightouch": resource}
        )


def sync_spec(sync: HightouchSync) -> dg.AssetSpec:
    declaration = sync.declaration
    destination = declaration.destination
    metadata: dict[str, Any] = {
        "hightouch/sync": declaration.sync_id or declaration.sync_slug,
        "hightouch/destination": destination.label,
        "hightouch/on_warning": declaration.on_warning,
        "hightouch/full_resync": declaration.full_resync,
        "hightouch/primary_key": declaration.primary_key,
        "source_file": str(sync.source_file.relative_to(environment.PROJECT_ROOT))
        if sync.source_file.is_relative_to(environment.PROJECT_ROOT)
        else str(sync.source_file),
    }
    if declaration.automation is not None:
        metadata["platform/automation"] = dg.MetadataValue.json(declaration.automation)
    try:
        return dg.AssetSpec(
            key=sync.asset_key,
            deps=[sync.model.asset_key, *(ref.asset_key for ref in sync.also_reads)],
            description=declaration.description
            or f"Hightouch sync of {sync.model.schema}.{sync.model.name} to {destination.label}.",
            group_name="activation",
            kinds={"hightouch", destination.kind},
            tags={"layer": "activation"},
            owners=declaration.owners,
            metadata=metadata,
        )
    except dg.DagsterInvalidDefinitionError as error:
        raise HightouchSyncConfigError(f"{sync.source_file}: key 'owners': {error}. {DOCS_HINT}") from None


def sync_asset(sync: HightouchSync, retry: dg.RetryPolicy | None = None) -> dg.AssetsDefinition:
    # The sandbox (and, in prod, Hightouch itself) reads the warehouse: the `warehouse` pool keeps the
    # local DuckDB writer (dbt, loads) from holding the file while it does.
    spec = sync_spec(sync)
    check = dg.AssetCheckSpec(
        CHECK_NAME,
        asset=spec.key,
        blocking=False,
        description="Rows the destination rejected in the latest Hightouch run; warns while any were.",
    )

    @dg.multi_asset(
        name=f"hightouch_{sync.name}", specs=[spec], check_specs=[check], pool="warehouse", retry_policy=retry
    )
    def _sync(context: dg.AssetExecutionContext, hightouch: HightouchResource) -> dg.MaterializeResult:
        with only_transient_retried(is_transient):
            return run_sync(context, hightouch, sync)

    return _sync


def run_sync(context: dg.AssetExecutionContext, hightouch: HightouchResource, sync: HightouchSync):
    """Trigger the sync, follow its run, and turn Hightouch's verdict into the asset's."""
    declaration = sync.declaration
    client = hightouch.get_client(log=context.log)
    found = client.find_sync(sync_id=declaration.sync_id, slug=declaration.sync_slug)
    sync_id = str(found["id"])
    destination = client.get_destination(str(found["destinationId"])) if found.get("destinationId") else {}
    run_id = client.trigger_sync(sync_id=sync_id, full_resync=declaration.full_resync)
    run_url = hightouch.run_url(sync_id, run_id)
    context.log.info(f"Triggered Hightouch sync {sync_id} ({sync.name}): run {run_id} {run_url or ''}")

    def report(run: HightouchRun) -> None:
        context.log.info(f"Hightouch run {run_id}: {run.status}, {100 * run.completion_ratio:.0f}% done")

    try:
        run = client.wait_for_run(
            sync_id,
            run_id,
            poll_interval_seconds=hightouch.poll_interval_seconds,
            timeout_seconds=hightouch.poll_timeout_seconds,
            on_change=report,
        )
    except HightouchError as error:
        raise dg.Failure(
            description=str(error), metadata=_link(run_id, run_url), allow_retries=is_transient(error)
        ) from None
    metadata = run_metadata(run, sync_id, run_url, destination, declaration.destination.label)
    verdict = _verdict(run, declaration.on_warning)
    if verdict:
        raise dg.Failure(
            description=f"Hightouch sync '{sync.name}' (sync {sync_id}, run {run_id}) {verdict}",
            metadata=metadata,
            allow_retries=False,
        )
    if run.status == "warning":
        context.log.warning(
            f"Hightouch run {run_id} ended with a warning (passing as configured): {run.error}"
        )
    return dg.MaterializeResult(metadata=metadata, check_results=[rejected_rows_check(sync, run)])


def rejected_rows_check(sync: HightouchSync, run: HightouchRun) -> dg.AssetCheckResult:
    failed = run.failed
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        asset_key=sync.asset_key,
        passed=failed.total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"The destination rejected {failed.total} row(s) in Hightouch run {run.id}: "
            f"{run.error or 'Hightouch gave no message'}. Hightouch lists them on the run's page."
            if failed.total
            else "The destination accepted every row."
        ),
        metadata={
            "failed_added": failed.added,
            "failed_changed": failed.changed,
            "failed_removed": failed.removed,
            "failed_total": failed.total,
        },
    )


def _verdict(run: HightouchRun, on_warning: str) -> str | None:
    """Why the asset fails, or None when it succeeds."""
    if run.status in FAILED_STATUSES:
        return f"ended '{run.status}': {run.error or 'Hightouch gave no error message'}"
    if run.status == "warning" and on_warning == "fail":
        return (
            f"ended with a warning and on_warning is 'fail': {run.error or 'no message'} "
            f"({run.failed.total} rows rejected)"
        )
    return None


def _link(run_id: str, run_url: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"hightouch/run_id": run_id}
    if run_url:
        metadata["hightouch/run_url"] = dg.MetadataValue.url(run_url)
    return metadata


def run_metadata(
    run: HightouchRun, sync_id: str, run_url: str | None, destination: Mapping[str, Any], label: str
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        **_link(run.id, run_url),
        "hightouch/sync_id": sync_id,
        "hightouch/status": run.status,
        "destination": str(destination.get("name") or label),
        "planned_added": run.planned.added,
        "planned_changed": run.planned.changed,
        "planned_removed": run.planned.removed,
        "planned_total": run.planned.total,
        "successful_added": run.successful.added,
        "successful_changed": run.successful.changed,
        "successful_removed": run.successful.removed,
        "failed_added": run.failed.added,
        "failed_changed": run.failed.changed,
        "failed_removed": run.failed.removed,
        "failed_total": run.failed.total,
        "completion_ratio": run.completion_ratio,
    }
    if run.query_size is not None:
        metadata["query_size"] = run.query_size
    if run.error:
        metadata["hightouch/error"] = run.error
    return metadata
