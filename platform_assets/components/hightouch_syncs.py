"""Hightouch syncs as assets: one YAML document per sync under defs/activation/hightouch/syncs/.

Each document becomes the asset `["hightouch", <name>]` (group `activation`, kinds {"hightouch",
<destination kind>}, tag layer=activation) that depends on the dbt model(s) the sync reads.
Materializing it triggers the sync through the Hightouch REST API, follows the run to its end and
reports Hightouch's row counts. The local Hightouch sandbox is seeded from the same documents
(`load_sync_declarations`), so the YAML is the one source of truth for both.
"""

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from platform_assets import environment
from platform_assets.clients.hightouch import (
    DEFAULT_API_BASE_URL,
    FAILED_STATUSES,
    HightouchClient,
    HightouchError,
    SyncRun,
)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# dbt model name prefix -> warehouse schema (the contract's asset keys are [schema, model]).
MODEL_PREFIX_SCHEMAS = {
    "stg_": "staging",
    "fin_": "finance",
    "mkt_": "marketing",
    "sales_": "sales",
    "act_": "activation",
}
KNOWN_SCHEMAS = frozenset(MODEL_PREFIX_SCHEMAS.values())
DEFAULT_MANIFEST_PATH = environment.DBT_PROJECT_DIR / "target" / "manifest.json"
DOCS_HINT = "See docs/readme/hightouch.md, 'Adding a Hightouch sync'."


class HightouchSyncConfigError(ValueError):
    """A sync document that cannot become an asset; the message names the file and the key."""


# -- the YAML document -------------------------------------------------------------------------------


class DestinationDeclaration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="Human name of the destination, e.g. 'Braze (marketing workspace)'.")
    kind: str = Field(
        description="Destination kind, shown as an asset kind: braze, google_ads, linkedin_ads…"
    )
    slug: str | None = Field(
        default=None,
        description="The destination's slug in Hightouch (the sandbox creates it); default: kind.",
    )

    @field_validator("kind")
    @classmethod
    def _kind_is_a_name(cls, kind: str) -> str:
        if not _NAME.match(kind):
            raise ValueError(
                f"'{kind}' is not a kind: use lower-case letters, digits and '_' (e.g. google_ads)"
            )
        return kind


class SyncDeclaration(BaseModel):
    """One Hightouch sync as declared in syncs/<name>.yaml."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Asset name: the asset key is ['hightouch', name]. Default: the file name.")
    sync_id: str | None = Field(default=None, description="The sync's id in Hightouch.")
    sync_slug: str | None = Field(default=None, description="The sync's slug in Hightouch (used when no id).")
    model: str = Field(description="The dbt model the Hightouch model selects from: 'name' or 'schema.name'.")
    also_reads: list[str] = Field(
        default_factory=list, description="Other dbt models the sync's query reads."
    )
    primary_key: str = Field(description="The model column Hightouch matches records on.")
    destination: DestinationDeclaration
    on_warning: Literal["pass", "fail"] = Field(
        default="pass",
        description="What a run that ends in 'warning' (some rows rejected) does to the asset.",
    )
    full_resync: bool = Field(default=False, description="Ask Hightouch to resend every row on each run.")
    description: str | None = None
    owners: list[str] = Field(default_factory=list)
    automation: dict[str, Any] | None = Field(
        default=None, description="Scheduling settings, passed untouched to the automation component."
    )

    @field_validator("name")
    @classmethod
    def _name_is_a_name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"'{name}' is not a valid sync name: use lower-case letters, digits and '_'")
        return name

    @field_validator("sync_id", mode="before")
    @classmethod
    def _id_as_text(cls, sync_id: Any) -> Any:
        sync_id = str(sync_id) if isinstance(sync_id, int) else sync_id
        if isinstance(sync_id, str) and not sync_id.isdigit():
            raise ValueError(
                f"'{sync_id}' is not a Hightouch sync id (ids are numbers; use sync_slug for names)"
            )
        return sync_id

    @model_validator(mode="after")
    def _named_in_hightouch(self) -> "SyncDeclaration":
        if not (self.sync_id or self.sync_slug):
            raise ValueError("give the sync's 'sync_id' or 'sync_slug' in Hightouch (one is required)")
        return self


@dataclass(frozen=True)
class ModelRef:
    schema: str
    name: str

    @property
    def asset_key(self) -> dg.AssetKey:
        return dg.AssetKey([self.schema, self.name])


@dataclass(frozen=True)
class HightouchSync:
    """A validated sync: its declaration, where it came from and the models it reads."""

    declaration: SyncDeclaration
    source_file: Path
    model: ModelRef
    also_reads: tuple[ModelRef, ...]

    @property
    def name(self) -> str:
        return self.declaration.name

    @property
    def asset_key(self) -> dg.AssetKey:
        return dg.AssetKey(["hightouch", self.name])

    @property
    def destination_slug(self) -> str:
        return self.declaration.destination.slug or self.declaration.destination.kind.replace("_", "-")

    @property
    def sync_slug(self) -> str:
        """The slug the sandbox registers the sync under (the declared slug, else the name)."""
        return self.declaration.sync_slug or self.name.replace("_", "-")


# -- loading and validating the documents ------------------------------------------------------------


def load_sync_declarations(syncs_dir: Path, manifest_path: Path | None = None) -> list[HightouchSync]:
    """Every syncs/*.yaml document, validated; fails naming the file and key of the first mistake.

    With a dbt manifest at `manifest_path`, each model name is checked against it (one cached read).
    """
    if not syncs_dir.is_dir():
        raise HightouchSyncConfigError(f"{syncs_dir}: the Hightouch syncs folder does not exist. {DOCS_HINT}")
    manifest_models = _manifest_models(manifest_path) if manifest_path else None
    syncs = [_load_one(path, manifest_models) for path in sorted(syncs_dir.glob("*.y*ml"))]
    _refuse_duplicates(syncs)
    return syncs


def _load_one(path: Path, manifest_models: Mapping[str, str] | None) -> HightouchSync:
    raw = _read_document(path)
    raw.setdefault("name", path.stem)
    try:
        declaration = SyncDeclaration.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"key '{'.'.join(str(part) for part in problem['loc']) or '(document)'}': {problem['msg']}"
            for problem in error.errors()
        )
        raise HightouchSyncConfigError(f"{path}: {problems}. {DOCS_HINT}") from None
    model = _resolve_model(declaration.model, path, "model", manifest_models)
    also = tuple(
        _resolve_model(name, path, f"also_reads[{index}]", manifest_models)
        for index, name in enumerate(declaration.also_reads)
    )
    return HightouchSync(declaration=declaration, source_file=path, model=model, also_reads=also)


def _read_document(path: Path) -> dict[str, Any]:
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except yaml.YAMLError as error:
        raise HightouchSyncConfigError(f"{path}: not valid YAML ({error}). {DOCS_HINT}") from None
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise HightouchSyncConfigError(
            f"{path}: expected exactly one YAML mapping (one sync per file), found {len(documents)} "
            f"document(s). {DOCS_HINT}"
        )
    return documents[0]


def _resolve_model(
    reference: str, path: Path, key: str, manifest_models: Mapping[str, str] | None
) -> ModelRef:
    """'schema.model' or 'model' -> ModelRef; the schema of a bare name comes from the manifest or prefix."""
    schema, _, name = reference.rpartition(".")
    if manifest_models is not None:
        if name not in manifest_models:
            raise HightouchSyncConfigError(
                f"{path}: key '{key}': dbt model '{name}' is not in the dbt manifest. Fix the name, or "
                f"re-run `dbt parse` if the model is new. {DOCS_HINT}"
            )
        schema = schema or manifest_models[name]
    schema = schema or next(
        (schema for prefix, schema in MODEL_PREFIX_SCHEMAS.items() if name.startswith(prefix)), ""
    )
    if schema not in KNOWN_SCHEMAS or not _NAME.match(name):
        raise HightouchSyncConfigError(
            f"{path}: key '{key}': cannot resolve '{reference}' to a dbt model key: write it as "
            f"'<schema>.<model>' with schema one of {', '.join(sorted(KNOWN_SCHEMAS))}, or use a model "
            f"whose name starts with {', '.join(MODEL_PREFIX_SCHEMAS)}. {DOCS_HINT}"
        )
    return ModelRef(schema=schema, name=name)


def _manifest_models(manifest_path: Path) -> Mapping[str, str] | None:
    if not manifest_path.is_file():
        return None
    stat = manifest_path.stat()
    return _read_manifest_models(str(manifest_path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _read_manifest_models(path: str, _mtime_ns: int, _size: int) -> Mapping[str, str]:
    """Model name -> schema of the model's asset key, from the manifest (cached per file version)."""
    nodes = json.loads(Path(path).read_text()).get("nodes", {})
    models = {}
    for node in nodes.values():
        if node.get("resource_type") != "model":
            continue
        custom_schema = (node.get("config") or {}).get("schema")
        in_folder = next((part for part in node.get("fqn", []) if part in KNOWN_SCHEMAS), "")
        models[node["name"]] = custom_schema if custom_schema in KNOWN_SCHEMAS else in_folder
    return models


def _refuse_duplicates(syncs: list[HightouchSync]) -> None:
    seen: dict[tuple[str, str], Path] = {}
    for sync in syncs:
        identities = [("name", sync.name), ("sync_slug", sync.sync_slug)]
        if sync.declaration.sync_id:
            identities.append(("sync_id", sync.declaration.sync_id))
        for key, value in identities:
            if (key, value) in seen:
                raise HightouchSyncConfigError(
                    f"{sync.source_file}: key '{key}': '{value}' is already used by {seen[(key, value)]}; "
                    "every sync needs its own."
                )
            seen[(key, value)] = sync.source_file


# -- the resource -----------------------------------------------------------------------------------


class HightouchResource(dg.ConfigurableResource):
    """Connection settings for the Hightouch API (the real one, or the local sandbox)."""

    api_key: str
    base_url: str = DEFAULT_API_BASE_URL
    app_url: str | None = None
    """Where runs can be seen: '<app_url>/syncs/<id>/runs/<run id>' (the sandbox, or the Hightouch app)."""
    request_timeout_seconds: float = 30.0
    max_attempts: int = 6
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    poll_interval_seconds: float = 2.0
    poll_timeout_seconds: float = 3600.0

    def get_client(self, log: Any = None) -> HightouchClient:
        return HightouchClient(
            self.base_url,
            self.api_key,
            timeout_seconds=self.request_timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_initial_seconds=self.backoff_initial_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            log=log,
        )

    def run_url(self, sync_id: str, run_id: str) -> str | None:
        return f"{self.app_url.rstrip('/')}/syncs/{sync_id}/runs/{run_id}" if self.app_url else None


def hightouch_resource(
    env: environment.PlatformEnvironment | None = None, **overrides: Any
) -> HightouchResource:
    """Local: the sandbox and its fixed key. ci/prod: HIGHTOUCH_API_KEY through dg.EnvVar."""
    env = env or environment.current()
    base_url = env.hightouch_api_base_url
    if env.is_local:
        settings: dict[str, Any] = {
            "api_key": environment.SANDBOX_HIGHTOUCH_API_KEY,
            "base_url": base_url,
            "app_url": base_url.rstrip("/").removesuffix("/api/v1"),
        }
    else:
        settings = {
            "api_key": dg.EnvVar("HIGHTOUCH_API_KEY"),
            "base_url": base_url,
            "app_url": os.environ.get("HIGHTOUCH_APP_URL") or None,
        }
    return HightouchResource(**{**settings, **overrides})


# -- the component ----------------------------------------------------------------------------------


class HightouchSyncsComponent(dg.Component, dg.Model, dg.Resolvable):
    """One asset per Hightouch sync document in `syncs_dir`, plus the `hightouch` resource."""

    syncs_dir: str = "syncs"
    """Folder of sync documents, relative to this defs.yaml (or absolute)."""
    dbt_manifest_path: str | None = None
    """dbt manifest to check model names against, if it exists (default dbt_project/target/manifest.json)."""
    poll_interval_seconds: float = 2.0
    poll_timeout_seconds: float = 3600.0
    backoff_initial_seconds: float = 0.5
    max_attempts: int = 6

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        manifest = Path(self.dbt_manifest_path) if self.dbt_manifest_path else DEFAULT_MANIFEST_PATH
        syncs = load_sync_declarations(Path(context.path) / self.syncs_dir, manifest)
        resource = hightouch_resource(
            poll_interval_seconds=self.poll_interval_seconds,
            poll_timeout_seconds=self.poll_timeout_seconds,
            backoff_initial_seconds=self.backoff_initial_seconds,
            max_attempts=self.max_attempts,
        )
        return dg.Definitions(assets=[sync_asset(sync) for sync in syncs], resources={"hightouch": resource})


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


def sync_asset(sync: HightouchSync) -> dg.AssetsDefinition:
    # The sandbox (and, in prod, Hightouch itself) reads the warehouse: the `warehouse` pool keeps the
    # local DuckDB writer (dbt, loads) from holding the file while it does.
    @dg.multi_asset(name=f"hightouch_{sync.name}", specs=[sync_spec(sync)], pool="warehouse")
    def _sync(context: dg.AssetExecutionContext, hightouch: HightouchResource) -> dg.MaterializeResult:
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

    def report(run: SyncRun) -> None:
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
        raise dg.Failure(description=str(error), metadata=_link(run_id, run_url)) from None
    metadata = run_metadata(run, sync_id, run_url, destination, declaration.destination.label)
    verdict = _verdict(run, declaration.on_warning)
    if verdict:
        raise dg.Failure(
            description=f"Hightouch sync '{sync.name}' (sync {sync_id}, run {run_id}) {verdict}",
            metadata=metadata,
        )
    if run.status == "warning":
        context.log.warning(
            f"Hightouch run {run_id} ended with a warning (passing as configured): {run.error}"
        )
    return dg.MaterializeResult(metadata=metadata)


def _verdict(run: SyncRun, on_warning: str) -> str | None:
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
    run: SyncRun, sync_id: str, run_url: str | None, destination: Mapping[str, Any], label: str
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
