"""SalesforceSyncsComponent: each YAML document under syncs/ becomes one asset ["salesforce", <name>].

    # defs/activation/salesforce/defs.yaml
    type: platform_assets.components.salesforce_syncs.SalesforceSyncsComponent
    attributes:
      syncs_dir: syncs

Each asset depends on its dbt model (its asset key from the prepared manifest), sends only the rows that
changed since the last confirmed sync (platform_assets.integrations.salesforce), and carries a non-blocking
`no_failed_records` check.

Orgs: each sync writes to the org its document names (`org`, default: the default org of orgs.yaml,
platform_assets/integrations/salesforce/orgs.py), through that org's resource (`salesforce` for the
default org, `salesforce_<org>` for another). Before sending, a run checks the org's credential variables
(ci/prod; a missing one fails naming the orgs file and key) and its daily API budget.

Concurrency: an asset has one pool. Locally the sync state lives in the single-writer DuckDB file, so
syncs use the `warehouse` pool (limit 1), which also serialises their Salesforce calls. In ci/prod the
warehouse is Snowflake (many writers), so the binding limit is the org's Bulk API: syncs use their org's
pool there (`salesforce_api` for the default org). `sync_pool()` is the one place that decides.

Retries: the assets carry the `retry:` policy of defs.yaml (platform_assets/components/retries.py) for
the failures in TRANSIENT_ERRORS only; anything else (mapping or model errors, failed blocking checks)
fails once, without a retry.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import requests

from platform_assets import dbt_manifest, environment
from platform_assets.components.retries import RetryDecl, only_transient_retried, retry_policy
from platform_assets.dbt_manifest import DbtModel, resolve_model
from platform_assets.integrations.salesforce.client import SalesforceClient, SalesforceUnavailable
from platform_assets.integrations.salesforce.orgs import OrgCredentialsError, SalesforceOrg, load_orgs
from platform_assets.integrations.salesforce.sync_engine import SalesforceSyncRun, SyncIncomplete, SyncReport
from platform_assets.integrations.salesforce.sync_spec import SyncSpec, load_sync_specs
from platform_assets.integrations.salesforce.sync_state import CHANGE_TYPES, SyncStore

SYNC_STATE_SCHEMA = "platform_sync"
CHECK_NAME = "no_failed_records"
CONFLICTS_CHECK_NAME = "no_conflicts"

# The failures a later attempt can get past: Salesforce unavailable after the client's own bounded
# retries, a Bulk job Salesforce failed or aborted (its records are sent again), the network.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    SalesforceUnavailable,
    SyncIncomplete,
    requests.ConnectionError,
    requests.Timeout,
)


def is_transient(error: BaseException) -> bool:
    """Whether the retry policy may re-run the sync after `error` (see TRANSIENT_ERRORS)."""
    return isinstance(error, TRANSIENT_ERRORS)


def sync_pool(env: environment.PlatformEnvironment | None = None, org: SalesforceOrg | None = None) -> str:
    """See the module docstring: the DuckDB writer pool locally, the org's API pool elsewhere."""
    env = env or environment.current()
    if env.is_local:
        return "warehouse"
    return org.pool if org is not None else "salesforce_api"


class ApiBudgetExhausted(RuntimeError):
    """The org used its declared daily API budget; nothing is sent until its usage falls below it."""


def check_api_budget(org: SalesforceOrg, client: SalesforceClient) -> dict[str, int]:
    """The org's daily API usage now (one `/limits` call) against its declared budget; raises when the
    org already used the budget. Returns the usage figures for the run's metadata."""
    budget = org.decl.daily_api_budget
    if budget is None:
        return {}
    daily = client.limits().get("DailyApiRequests", {})
    used = int(daily.get("Max", 0)) - int(daily.get("Remaining", 0))
    if used >= budget:
        raise ApiBudgetExhausted(
            f"Salesforce org {org.name!r} used {used} API requests today, its budget is {budget} "
            f"({org.source_file}, key 'orgs.{org.name}.daily_api_budget'); nothing was sent. Re-run when "
            "the org's 24-hour usage is lower, or raise the budget."
        )
    return {"org_daily_api_budget": budget, "org_api_requests_used_at_start": used}


class SalesforceSyncConfig(dg.Config):
    full_resync: bool = False
    """Ignore the stored row hashes and send every row again (insert mode still never re-inserts)."""
    recovery_timeout_seconds: float = 300.0
    """How long to wait for Bulk jobs an interrupted run left pending before failing."""


# ------------------------------------------------------------------------------ blocking checks


def failed_blocking_checks(
    context: dg.AssetExecutionContext, model_key: dg.AssetKey, check_names: Sequence[str]
) -> list[str]:
    """The model's blocking checks whose latest evaluation (in any run) failed.

    Within one run Dagster already skips the sync when a blocking check fails; this covers a sync run on
    its own after its model's checks failed in another run. The check names come from the prepared dbt
    manifest at load (the model's error-severity tests), so no repository lookup is needed at run time."""
    failed = []
    for name in check_names:
        record = context.instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(model_key, name))
        evaluation = record.evaluation if record is not None else None
        if (
            record is not None
            and evaluation is not None
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            failed.append(f"{name} (run {record.run_id})")
    return failed


# ------------------------------------------------------------------------------ metadata


def report_metadata(report: SyncReport, org: str | None = None) -> dict[str, Any]:
    """The audit trail of one run, readable by a RevOps team (no secrets, no record values)."""
    metadata: dict[str, Any] = {
        **({"salesforce_org": org} if org else {}),
        "salesforce_object": report.sobject,
        "mode": report.mode,
        "full_resync": report.full_resync,
    }
    if report.salesforce_url:
        metadata["salesforce_url"] = dg.MetadataValue.url(report.salesforce_url)
    for name, counter in (
        ("planned", report.planned),
        ("sent", report.sent),
        ("succeeded", report.succeeded),
        ("failed", report.failed),
    ):
        for change_type in CHANGE_TYPES:
            metadata[f"{name}_{change_type}"] = int(counter[change_type])
    metadata.update(
        {
            "unprocessed": int(sum(report.unprocessed.values())),
            "recovered_from_earlier_run": report.recovered,
            "bulk_job_ids": dg.MetadataValue.json(list(report.job_ids)),
            "api_calls": report.api_calls,
            "change_detection_seconds": round(report.detection_seconds, 4),
            "duration_seconds": round(report.duration_seconds, 3),
            "sync_run_id": report.run_id,
        }
    )
    usage = report.api_usage
    if usage.get("Max"):
        metadata["daily_api_requests_max"] = int(usage["Max"])
        metadata["daily_api_requests_remaining"] = int(usage.get("Remaining", 0))
        metadata["daily_api_requests_used_pct"] = round(
            100.0 * (usage["Max"] - usage.get("Remaining", 0)) / usage["Max"], 2
        )
    if report.failure_sample:
        metadata["failure_sample"] = dg.MetadataValue.json(report.failure_sample)
    if report.conflicts or report.conflict_sample:
        metadata["conflicts"] = int(sum(report.conflicts.values()))
        for decision, count in sorted(report.conflicts.items()):
            metadata[f"conflicts_{decision}"] = int(count)
        metadata["conflict_sample"] = dg.MetadataValue.json(report.conflict_sample)
    if report.job_errors:
        metadata["job_errors"] = dg.MetadataValue.json(report.job_errors)
    if report.skipped_null_keys or report.skipped_duplicate_keys:
        metadata["skipped_null_keys"] = report.skipped_null_keys
        metadata["skipped_duplicate_keys"] = dg.MetadataValue.json(report.skipped_duplicate_keys)
    return metadata


def failures_check(store: SyncStore, spec: SyncSpec) -> dg.AssetCheckResult:
    summary = store.failure_summary(spec.state_key)
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        asset_key=dg.AssetKey(spec.asset_key),
        passed=summary.count == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{summary.count} record(s) Salesforce rejected; they are retried every run "
            f"(table {store.table('sync_failures')})."
            if summary.count
            else "Every record sent was accepted."
        ),
        metadata={
            "failed_records": summary.count,
            **{f"failed_{t}": summary.by_change_type.get(t, 0) for t in CHANGE_TYPES},
            "sample": dg.MetadataValue.json(summary.sample),
        },
    )


def conflicts_check(store: SyncStore, spec: SyncSpec, run_id: str) -> dg.AssetCheckResult:
    """This run's conflicts: counts by decision and field, a sample with both values (never blocking)."""
    summary = store.conflict_summary(spec.state_key, run_id)
    table = store.table("sync_conflicts")
    return dg.AssetCheckResult(
        check_name=CONFLICTS_CHECK_NAME,
        asset_key=dg.AssetKey(spec.asset_key),
        passed=summary.count == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{summary.count} field(s) changed in Salesforce and in the warehouse were decided by the "
            f"conflict policy; both values are in {table} "
            f"(sync_name = '{spec.state_key}', run_id = '{run_id}')."
            if summary.count
            else "No field changed on both sides since the platform last wrote it."
        ),
        metadata={
            "conflicts": summary.count,
            **{f"decided_{d}": n for d, n in sorted(summary.by_decision.items())},
            "by_field": dg.MetadataValue.json(summary.by_field),
            "sample": dg.MetadataValue.json(summary.sample),
        },
    )


# ------------------------------------------------------------------------------ assets


def build_sync_asset(
    spec: SyncSpec,
    model: DbtModel,
    pool: str,
    retry: dg.RetryPolicy | None = None,
    org: SalesforceOrg | None = None,
) -> dg.AssetsDefinition:
    """The sync's asset, writing to `org` (default: the default org of orgs.yaml); the model's blocking
    checks are consulted before sending."""
    org = org or load_orgs().get(spec.org, where=spec.source_file)
    spec = spec.model_copy(update={"org": org.name, "org_state_key": org.state_key(spec.name)})
    key = dg.AssetKey(spec.asset_key)
    model_key = model.asset_key
    model_check_names = model.blocking_tests
    static_metadata: dict[str, Any] = {
        "salesforce_org": org.name,
        "salesforce_object": spec.object,
        "mode": spec.mode,
        "external_id_field": spec.external_id_field or "",
        "primary_key": spec.primary_key,
        "mapping": dg.MetadataValue.json(spec.mapping),
        "batch_size": spec.batch_size,
        "sync_file": spec.source_file,
        "model_blocking_checks": dg.MetadataValue.json(list(model_check_names)),
    }
    if spec.automation is not None:
        static_metadata["platform/automation"] = dg.MetadataValue.json(spec.automation)
    check_specs = [
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=key,
            blocking=False,
            description="Records Salesforce rejected (sync_failures); warns while any remain.",
        )
    ]
    if spec.detects_conflicts:
        rules = {field: rule.policy for field, rule in spec.conflict_rules().items()}
        static_metadata["conflict_policies"] = dg.MetadataValue.json(rules)
        check_specs.append(
            dg.AssetCheckSpec(
                CONFLICTS_CHECK_NAME,
                asset=key,
                blocking=False,
                description="Fields changed on both sides, decided by the conflict policy (sync_conflicts); "
                "warns when a run found any.",
            )
        )

    @dg.asset(
        key=key,
        deps=[model_key],
        group_name="activation",
        kinds={"salesforce"},
        tags={"layer": "activation"},
        owners=spec.owners or None,
        description=spec.description
        or f"{spec.mode} {spec.object} records from dbt model {spec.model} (Bulk API 2.0).",
        metadata=static_metadata,
        pool=pool,
        retry_policy=retry,
        required_resource_keys={org.resource_key, "warehouse"},
        check_specs=check_specs,
    )
    def _sync(context: dg.AssetExecutionContext, config: SalesforceSyncConfig) -> dg.MaterializeResult:
        with only_transient_retried(is_transient):
            return send(context, config)

    def send(context: dg.AssetExecutionContext, config: SalesforceSyncConfig) -> dg.MaterializeResult:
        failed = failed_blocking_checks(context, model_key, model_check_names)
        if failed:
            raise dg.Failure(
                description=(
                    f"Sync {spec.name} not sent: blocking check(s) of {model_key.to_user_string()} failed "
                    f"in their latest evaluation: {', '.join(failed)}. Fix the model and re-run its checks."
                ),
                allow_retries=False,
            )
        env = environment.current()
        try:
            org.connection(env)  # every credential variable set, or fail naming the orgs file and key
            client = getattr(context.resources, org.resource_key).get_client()
            budget = check_api_budget(org, client)
        except (OrgCredentialsError, ApiBudgetExhausted) as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        store = SyncStore(context.resources.warehouse, env.schema(SYNC_STATE_SCHEMA))
        run = SalesforceSyncRun(
            spec=spec,
            warehouse=context.resources.warehouse,
            client=client,
            sync_schema=env.schema(SYNC_STATE_SCHEMA),
            model_schema=env.schema(model.schema),
            model_table=model.table,
            run_id=context.run.run_id,
            full_resync=config.full_resync,
            recovery_timeout=config.recovery_timeout_seconds,
            schema_prefix=env.schema(""),
        )
        try:
            report = run.run()
        except SyncIncomplete as exc:
            raise dg.Failure(
                description=str(exc), metadata=report_metadata(exc.report, org.name), allow_retries=True
            ) from exc
        metadata = {**report_metadata(report, org.name), **budget}
        with store.pinned():
            metadata["dagster/row_count"] = store.state_count(spec.state_key)
            checks = [failures_check(store, spec)]
            if spec.detects_conflicts:
                checks.append(conflicts_check(store, spec, context.run.run_id))
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    return _sync


class SalesforceSyncsComponent(dg.Component, dg.Model, dg.Resolvable):
    """One asset per YAML document in `syncs_dir` (see docs/salesforce-syncs.md)."""

    syncs_dir: str = "syncs"
    """Folder (relative to this defs.yaml) holding one YAML document per sync."""
    dbt_manifest_path: str | None = None
    """The prepared dbt manifest that resolves each model to its asset key and blocking tests; default
    dbt_project/target/manifest.json. Where it is not prepared, models must be written `schema.name`."""
    retry: RetryDecl | None = RetryDecl()
    """Dagster retry policy for transient failures (TRANSIENT_ERRORS); `null` turns retries off."""
    orgs_file: str | None = None
    """The orgs file (relative to this defs.yaml); default: the platform's
    defs/activation/salesforce/orgs.yaml, or without one the built-in single org (SALESFORCE_*)."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        manifest = dbt_manifest.read_if_prepared(
            Path(self.dbt_manifest_path) if self.dbt_manifest_path else dbt_manifest.DEFAULT_MANIFEST_PATH
        )
        orgs = load_orgs(context.path / self.orgs_file if self.orgs_file else None)
        specs = load_sync_specs(context.path / self.syncs_dir, manifest, orgs)
        env = environment.current()
        assets = []
        for spec in specs:
            org = orgs.get(spec.org)
            model = resolve_model(spec.model, manifest)
            assets.append(build_sync_asset(spec, model, sync_pool(env, org), retry_policy(self.retry), org))
        return dg.Definitions(assets=assets, resources={org.resource_key: org.resource(env) for org in orgs})
