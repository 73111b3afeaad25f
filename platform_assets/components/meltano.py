"""Meltano pipelines as assets: one asset per stream, one subsettable multi-asset per source.

defs/ingestion/defs.yaml instantiates `MeltanoProjectComponent`; defs/ingestion/sources.yaml declares each
source (extractor, optional loader, description, owners, cadence, extractor settings, streams) and the
loaders' settings. Settings are templates over the platform environment (platform_assets/env_templates.py):
their names are checked at load, their values read only when a run starts. Everything comes from committed
files (sources.yaml, meltano/meltano.yml): loading never runs meltano and never touches the network.

A source may name a Salesforce org of defs/activation/salesforce/orgs.yaml (`org`): its extractor then
gets that org's connection settings (login_url, client_id, client_secret or username and private_key,
api_version) when a run starts, and a missing credential variable fails the run naming the orgs file and
key. Two sources of one org-reading tap use two Meltano plugins (`inherit_from`), so each keeps its own
Meltano state id.

Each stream is the asset `["raw", <source>, <stream>]` (group `ingestion_<source>`, kinds meltano + the
warehouse, tag layer=ingestion) with the blocking check `rows_landed_match_extracted`. Materializing some
streams runs `meltano run` for those streams only; run config `full_refresh: true` re-extracts them.

Retries: the assets carry the component's `retry:` policy (platform_assets/components/retries.py) for
runs `is_transient` calls transient only (the plugins' error lines look like a network or an API busy or
down); bad data, missing settings, config errors and other failures fail once, without a retry.
"""

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from platform_assets import environment
from platform_assets.components.retries import RetryDecl, only_transient_retried, retry_policy
from platform_assets.env_templates import SettingTemplate, TemplateError, parse_settings
from platform_assets.integrations.meltano import (
    MeltanoProject,
    MeltanoProjectError,
    MeltanoRunError,
    RunResult,
    load_project,
    run_pipeline,
)
from platform_assets.integrations.meltano.runner import plugin_env_name
from platform_assets.integrations.salesforce.orgs import (
    OrgConfigError,
    OrgCredentialsError,
    OrgRegistry,
    SalesforceOrg,
    load_orgs,
)
from platform_assets.warehouse import Warehouse, quote_identifier

CHECK_NAME = "rows_landed_match_extracted"
DEFAULT_LOADERS = {"local": "target-duckdb", "ci": "target-snowflake", "prod": "target-snowflake"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_OWNER = re.compile(r"^(team:[\w.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")
DOCS_HINT = "See docs/ingestion.md, 'Adding a source'."
# What a tap or loader prints when the network or the API it calls failed for the moment.
TRANSIENT_ERROR = re.compile(
    r"connection ?(reset|refused|aborted|error)|remotedisconnected|timed ?out|timeout|"
    r"temporar(il)?y (unavailable|failure)|name resolution|too many requests|rate limit|"
    r"service unavailable|bad gateway|gateway timeout|\b(429|502|503|504)\b",
    re.IGNORECASE,
)


def is_transient(error: BaseException) -> bool:
    """Whether the retry policy may re-run the streams after `error`: a failed `meltano run` whose
    error lines (or failed streams' messages) look like a network error or an API busy or down."""
    if not isinstance(error, MeltanoRunError):
        return False
    result = error.result
    text = "\n".join([str(error), *result.error_lines, *result.failed_streams.values()])
    return bool(TRANSIENT_ERROR.search(text))


class SourcesConfigError(ValueError):
    """sources.yaml does not describe a loadable source; the message names the file and key."""


# -- sources.yaml ---------------------------------------------------------------------------------------


SettingDecl = str | dict[str, str]
"""A setting's template, or its template per mode (local, ci, prod, default)."""


class StreamDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(description="What one row is and where it comes from.")
    owner: str | None = Field(default=None, description="Email or team:<name>; defaults to the source's.")
    tap_stream: str | None = Field(
        default=None, description="The extractor's stream id when it differs (tap-postgres: app-workspaces)."
    )


class SourceDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    extractor: str
    loader: str | dict[Literal["local", "ci", "prod"], str] | None = Field(
        default=None, description="Loader (or loader per environment); default: the component's loaders."
    )
    description: str
    owners: list[str] = Field(default_factory=list)
    cadence: str | None = Field(default=None, description="Cron for the scheduling engineer (optional).")
    requires_env: list[str] = Field(
        default_factory=list, description="Environment variables without which the source is not defined."
    )
    settings: dict[str, SettingDecl] = Field(
        default_factory=dict,
        description="Extractor settings as templates over the platform environment (env_templates.py).",
    )
    org: str | None = Field(
        default=None,
        description="A Salesforce org of orgs.yaml: the extractor gets its connection settings at run time.",
    )
    streams: dict[str, StreamDecl]


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loader_settings: dict[str, dict[str, SettingDecl]] = Field(
        default_factory=dict, description="Loader -> its settings, templated like a source's settings."
    )
    sources: dict[str, SourceDecl]


@dataclass(frozen=True)
class Source:
    name: str
    extractor: str
    loader: str
    description: str
    owners: tuple[str, ...]
    cadence: str | None
    streams: dict[str, StreamDecl]
    settings: dict[str, SettingTemplate] = field(default_factory=dict)
    loader_settings: dict[str, SettingTemplate] = field(default_factory=dict)
    org: SalesforceOrg | None = None

    def tap_stream(self, stream: str) -> str:
        return self.streams[stream].tap_stream or stream

    def org_env(self, env: environment.PlatformEnvironment) -> dict[str, str]:
        """The org's connection settings as the extractor's Meltano setting variables, read now (run
        start); raises OrgCredentialsError naming the orgs file, key and variable that is missing."""
        if self.org is None:
            return {}
        prefix = plugin_env_name(self.extractor)
        return {f"{prefix}_{plugin_env_name(k)}": v for k, v in self.org.connection(env).items()}


# The extractor settings an org provides (SalesforceOrg.connection).
ORG_SETTINGS = ("login_url", "client_id", "client_secret", "username", "private_key", "api_version")


def declared_sources(file: Path) -> list[str]:
    """The names of the sources `file` declares, whether or not they are defined in this environment."""
    try:
        return list((yaml.safe_load(file.read_text()) or {}).get("sources") or {})
    except (OSError, yaml.YAMLError) as error:
        raise SourcesConfigError(f"{file} cannot be read: {error}\n{DOCS_HINT}") from None


def load_sources(
    file: Path,
    project_dir: Path,
    loaders: Mapping[str, str],
    env: environment.PlatformEnvironment,
    orgs: OrgRegistry | None = None,
) -> list[Source]:
    """The sources defined in this environment, validated against meltano.yml (and `org` against the
    Salesforce orgs, default: the platform's orgs.yaml)."""
    try:
        parsed = SourcesFile.model_validate(yaml.safe_load(file.read_text()) or {})
    except FileNotFoundError:
        raise SourcesConfigError(f"{file} does not exist. {DOCS_HINT}") from None
    except (yaml.YAMLError, ValidationError) as error:
        raise SourcesConfigError(f"{file} is not a valid sources file: {error}\n{DOCS_HINT}") from None
    project = load_project(project_dir)
    loader_settings = _loader_settings(parsed, project, file)
    sources = []
    for name, decl in parsed.sources.items():
        where = f"{file}: sources.{name}"
        if not _NAME.match(name):
            raise SourcesConfigError(f"{where}: source names are lower_snake_case")
        if any(not os.environ.get(variable) for variable in decl.requires_env):
            continue  # e.g. app_db exists only where PLATFORM_APP_DB_URL is set
        try:
            extractor = project.extractor(decl.extractor, where=f"{where}.extractor")
            loader = _loader(decl, loaders, env)
            project.check_loader(loader, where=f"{where}.loader")
            settings = _settings(decl.settings, extractor.name, extractor.settings, f"{where}.settings")
            org = _org(decl, extractor.name, extractor.settings, file, name, orgs) if decl.org else None
        except (MeltanoProjectError, TemplateError, OrgConfigError) as error:
            raise SourcesConfigError(str(error)) from None
        owners = tuple(decl.owners)
        for stream, stream_decl in decl.streams.items():
            stream_where = f"{where}.streams.{stream}"
            if not _NAME.match(stream):
                raise SourcesConfigError(f"{stream_where}: stream names are lower_snake_case")
            tap_stream = stream_decl.tap_stream or stream
            if tap_stream not in extractor.streams:
                raise SourcesConfigError(
                    f"{stream_where}: stream {tap_stream!r} is not declared for extractor "
                    f"{extractor.name!r} in {project.file} (declared: {', '.join(extractor.streams)}). "
                    "Declare it there (select / config.streams) or fix the name."
                )
            for owner in (*owners, *([stream_decl.owner] if stream_decl.owner else [])):
                if not _OWNER.match(owner):
                    raise SourcesConfigError(
                        f"{stream_where}: owner {owner!r} is not an email or team:<name>"
                    )
        sources.append(
            Source(
                name,
                decl.extractor,
                loader,
                decl.description,
                owners,
                decl.cadence,
                dict(decl.streams),
                settings,
                loader_settings.get(loader, {}),
                org,
            )
        )
    return sources


def _org(
    decl: SourceDecl, extractor: str, known: tuple[str, ...], file: Path, name: str, orgs: OrgRegistry | None
) -> SalesforceOrg:
    """The source's org; its extractor must take the org's settings, and the source must not set them."""
    where = f"{file}: sources.{name}"
    org = (orgs or load_orgs()).get(decl.org, where=str(file), key=f"sources.{name}.org")
    lacking = [name for name in ORG_SETTINGS if name not in known]
    if lacking:
        raise OrgConfigError(
            f"{where}.org: extractor {extractor!r} declares no setting(s) {', '.join(lacking)} in "
            "meltano.yml, so it cannot take an org's settings; declare them, or drop `org` and set `settings`"
        )
    both = sorted(set(decl.settings) & set(ORG_SETTINGS))
    if both:
        raise OrgConfigError(
            f"{where}.settings: {', '.join(both)} come(s) from org {org.name!r}; remove them from settings"
        )
    return org


def _settings(
    declared: Mapping[str, SettingDecl], plugin: str, known: tuple[str, ...], where: str
) -> dict[str, SettingTemplate]:
    """Templates of a plugin's settings, each a setting meltano.yml declares (Meltano ignores others)."""
    for key in declared:
        if key not in known:
            raise TemplateError(
                f"{where}.{key}: {plugin!r} declares no setting {key!r} in meltano.yml "
                f"(its settings: {', '.join(known) or 'none'}); declare it under the plugin's settings"
            )
    return parse_settings(declared, where)


def _loader_settings(
    parsed: SourcesFile, project: MeltanoProject, file: Path
) -> dict[str, dict[str, SettingTemplate]]:
    templates = {}
    for loader, declared in parsed.loader_settings.items():
        where = f"{file}: loader_settings.{loader}"
        try:
            project.check_loader(loader, where=where)
            templates[loader] = parse_settings(declared, where)
        except (MeltanoProjectError, TemplateError) as error:
            raise SourcesConfigError(str(error)) from None
    return templates


def _loader(decl: SourceDecl, loaders: Mapping[str, str], env: environment.PlatformEnvironment) -> str:
    chosen = decl.loader if decl.loader is not None else loaders
    if isinstance(chosen, str):
        return chosen
    if env.mode.value not in chosen:
        raise MeltanoProjectError(f"no loader for environment {env.mode.value!r} (set one per environment)")
    return chosen[env.mode.value]


# -- resources and run config ---------------------------------------------------------------------------


class MeltanoResource(dg.ConfigurableResource):
    """Runs the platform's Meltano project (`meltano` CLI) in the current platform environment."""

    project_dir: str

    def run(
        self,
        context: dg.AssetExecutionContext,
        *,
        extractor: str,
        loader: str,
        source: str,
        tap_streams: list[str],
        full_refresh: bool,
        extractor_settings: Mapping[str, SettingTemplate] | None = None,
        loader_settings: Mapping[str, SettingTemplate] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> RunResult:
        log = context.log

        def forward(level: str, message: str) -> None:
            getattr(log, level, log.info)(message)

        def meltano_run(force: bool = False) -> RunResult:
            return run_pipeline(
                extractor=extractor,
                loader=loader,
                source=source,
                tap_streams=tap_streams,
                full_refresh=full_refresh,
                force=force,
                log=forward,
                project_root=Path(self.project_dir),
                extractor_settings=extractor_settings,
                loader_settings=loader_settings,
                extra_env=extra_env,
            )

        try:
            return meltano_run()
        except MeltanoRunError as error:
            if not error.blocked_by_another_run():
                raise
            others = runs_loading(context, set(context.selected_asset_keys))
            if others:
                raise MeltanoRunError(
                    f"{error}\n  (loading these streams now: run(s) {others})", error.result
                ) from None
            # Dagster knows every run that could be loading these streams, and none is: the Meltano run on
            # record belongs to a run that died (the dead-run reaper failed it). Do not wait 5 minutes.
            log.warning(
                "Meltano records this pipeline as running, but no live run loads these streams: the "
                "record is left by a run that died; running with --force"
            )
            return meltano_run(force=True)


def runs_loading(context: dg.AssetExecutionContext, keys: set[dg.AssetKey]) -> list[str]:
    """Other in-progress runs that planned to materialize any of `keys`."""
    statuses = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    others = []
    for run in context.instance.get_runs(filters=dg.RunsFilter(statuses=statuses)):
        if run.run_id == context.run_id:
            continue
        planned = context.instance.get_records_for_run(
            run_id=run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=100_000
        ).records
        if any(
            r.event_log_entry.dagster_event.asset_key in keys
            for r in planned
            if r.event_log_entry.dagster_event
        ):
            others.append(run.run_id)
    return others


class MeltanoRunConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description="Ignore the selected streams' bookmarks and extract them again (a stream with key "
        "properties upserts the rows it gets again; a keyless one appends them and staging dedupes). "
        "Other streams keep their state.",
    )


# -- warehouse counts -----------------------------------------------------------------------------------


def _table_exists(session: Any, schema: str, table: str) -> bool:
    row = session.fetchone(
        "SELECT count(*) FROM information_schema.tables WHERE lower(table_schema) = lower(?) "
        "AND lower(table_name) = lower(?)",
        [schema, table],
    )
    return bool(row and row[0])


def watermark(warehouse: Warehouse, schema: str, table: str) -> datetime | None:
    """The latest `_sdc_batched_at` in a raw table before a run (None when it has no rows yet)."""
    with warehouse.session(read_only=True) as session:
        if not _table_exists(session, schema, table):
            return None
        row = session.fetchone(
            f"SELECT max(_sdc_batched_at) FROM {quote_identifier(schema)}.{quote_identifier(table)}"
        )
        return row[0] if row else None


def landed_counts(warehouse: Warehouse, schema: str, table: str, since: datetime | None) -> tuple[int, int]:
    """(rows the loader stamped after `since`, rows in the table): exact, since the loader stamps each row."""
    with warehouse.session(read_only=True) as session:
        if not _table_exists(session, schema, table):
            return 0, 0
        name = f"{quote_identifier(schema)}.{quote_identifier(table)}"
        total = session.fetchone(f"SELECT count(*) FROM {name}")
        if since is None:
            return int(total[0]), int(total[0])
        landed = session.fetchone(f"SELECT count(*) FROM {name} WHERE _sdc_batched_at > ?", [since])
        return int(landed[0]), int(total[0])


def stream_data_version(warehouse: Warehouse, schema: str, table: str) -> dg.DataVersion:
    """The raw table's content version: its row count and newest `_sdc_batched_at`. A run that landed no
    row leaves both as they were, so downstream automation sees no change (docs/automation.md)."""
    with warehouse.session(read_only=True) as session:
        if not _table_exists(session, schema, table):
            return dg.DataVersion("empty")
        name = f"{quote_identifier(schema)}.{quote_identifier(table)}"
        rows, newest = session.fetchone(f"SELECT count(*), max(_sdc_batched_at) FROM {name}")
        return dg.DataVersion(f"rows={rows};batched_at={newest}")


def reconcile(asset_key: dg.AssetKey, extracted: int, landed: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=CHECK_NAME,
        passed=extracted == landed,
        metadata={"rows_extracted": extracted, "rows_landed": landed, "rows_missing": extracted - landed},
        description=None
        if extracted == landed
        else (
            f"{extracted} rows were extracted but {landed} landed: the loader lost or added rows. "
            "Re-run with full_refresh after fixing the loader."
        ),
    )


# -- the assets -----------------------------------------------------------------------------------------


def _stream_spec(source: Source, stream: str, warehouse_kind: str, schema: str) -> dg.AssetSpec:
    decl = source.streams[stream]
    owners = [decl.owner] if decl.owner else list(source.owners)
    return dg.AssetSpec(
        key=dg.AssetKey(["raw", source.name, stream]),
        description=f"{decl.description}\n\nSource `{source.name}`: {source.description}",
        group_name=f"ingestion_{source.name}",
        kinds={"meltano", warehouse_kind},
        tags={"layer": "ingestion"},
        owners=owners,
        skippable=True,
        metadata={
            "target_table": dg.MetadataValue.text(f"{schema}.{stream}"),
            "meltano_pipeline": dg.MetadataValue.text(f"{source.extractor} -> {source.loader}"),
            "tap_stream": dg.MetadataValue.text(source.tap_stream(stream)),
            **({"salesforce_org": dg.MetadataValue.text(source.org.name)} if source.org else {}),
            **({"cadence": dg.MetadataValue.text(source.cadence)} if source.cadence else {}),
        },
    )


def _waiting(messages: list[str] | None) -> dict[str, Any]:
    """Input the tap left for a later run (e.g. a last line still being written), when there is any."""
    return {"input_waiting": dg.MetadataValue.text("\n".join(messages))} if messages else {}


def build_source_assets(
    source: Source, env: environment.PlatformEnvironment, retry: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    warehouse_kind = "duckdb" if env.is_local else "snowflake"
    schema = env.schema(f"raw_{source.name}")
    specs = [_stream_spec(source, stream, warehouse_kind, schema) for stream in source.streams]
    stream_of = {spec.key: stream for spec, stream in zip(specs, source.streams, strict=True)}
    checks = [
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=spec.key,
            blocking=True,
            description="Rows the loader stamped in this run (_sdc_batched_at) equal rows the tap extracted.",
        )
        for spec in specs
    ]

    @dg.multi_asset(
        name=f"meltano_{source.name}",
        specs=specs,
        check_specs=checks,
        can_subset=True,
        pool="warehouse",
        retry_policy=retry,
        description=f"Meltano: {source.extractor} -> {source.loader} ({source.description})",
    )
    def _ingest(
        context: dg.AssetExecutionContext,
        config: MeltanoRunConfig,
        meltano: MeltanoResource,
        warehouse: dg.ResourceParam[Warehouse],
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        with only_transient_retried(is_transient):
            yield from ingest(context, config, meltano, warehouse)

    def ingest(
        context: dg.AssetExecutionContext,
        config: MeltanoRunConfig,
        meltano: MeltanoResource,
        warehouse: Warehouse,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        keys = [spec.key for spec in specs if spec.key in context.selected_asset_keys]
        streams = [stream_of[key] for key in keys]
        marks = {stream: watermark(warehouse, schema, stream) for stream in streams}
        failure: MeltanoRunError | None = None
        try:
            org_env = source.org_env(environment.current())
        except OrgCredentialsError as error:  # say which variable and where it is declared
            raise dg.Failure(description=str(error), allow_retries=False) from None
        try:
            result = meltano.run(
                context,
                extractor=source.extractor,
                loader=source.loader,
                source=source.name,
                tap_streams=[source.tap_stream(s) for s in streams],
                full_refresh=config.full_refresh,
                extractor_settings=source.settings,
                loader_settings=source.loader_settings,
                extra_env=org_env,
            )
        except TemplateError as error:  # a declared setting has no value here: say which and what to set
            raise dg.Failure(description=str(error), allow_retries=False) from None
        except MeltanoRunError as error:
            if not error.result.failed_streams:
                raise dg.Failure(description=str(error), allow_retries=is_transient(error)) from None
            failure, result = error, error.result
        failed = {stream for stream in streams if source.tap_stream(stream) in result.failed_streams}
        for key, stream in zip(keys, streams, strict=True):
            if stream in failed:
                continue
            extracted = result.rows_extracted.get(source.tap_stream(stream), 0)
            landed, total = landed_counts(warehouse, schema, stream, marks[stream])
            yield dg.MaterializeResult(
                asset_key=key,
                data_version=stream_data_version(warehouse, schema, stream),
                metadata={
                    "rows_extracted": extracted,
                    "rows_landed": landed,
                    "dagster/row_count": total,
                    "duration_seconds": round(result.duration_seconds, 2),
                    "meltano_state_id": dg.MetadataValue.text(result.state_id),
                    "target_table": dg.MetadataValue.text(f"{schema}.{stream}"),
                    "full_refresh": config.full_refresh,
                    **_waiting(result.waiting.get(source.tap_stream(stream))),
                },
            )
            if dg.AssetCheckKey(key, CHECK_NAME) in context.selected_asset_check_keys:
                yield reconcile(key, extracted, landed)
        if failure is not None:
            details = "\n".join(
                f"- raw/{source.name}/{s}: {result.failed_streams[source.tap_stream(s)]}"
                for s in sorted(failed)
            )
            raise dg.Failure(
                description=f"{len(failed)} stream(s) of source '{source.name}' failed; the other selected "
                f"streams were loaded.\n{details}\n\n{failure}",
                metadata={"failed_streams": dg.MetadataValue.text(", ".join(sorted(failed)))},
                allow_retries=is_transient(failure),
            )

    return _ingest


class MeltanoProjectComponent(dg.Component, dg.Model, dg.Resolvable):
    """The platform's Meltano project as stream assets (see module docstring)."""

    project_dir: str = "meltano"
    sources_file: str = "sources.yaml"
    loaders: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LOADERS))
    retry: RetryDecl | None = RetryDecl()
    """Dagster retry policy for transient failures (`is_transient`); `null` turns retries off."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return ingestion_definitions(
            Path(context.path) / self.sources_file,
            Path(context.project_root) / self.project_dir,
            self.loaders,
            retry_policy(self.retry),
        )


def ingestion_definitions(
    sources_file: Path,
    project_dir: Path,
    loaders: Mapping[str, str] = DEFAULT_LOADERS,
    retry: dg.RetryPolicy | None = None,
) -> dg.Definitions:
    """The stream assets of every source defined in this environment, plus the `meltano` resource."""
    env = environment.current()
    project_dir = project_dir.resolve()
    sources = load_sources(sources_file, project_dir, loaders, env)
    return dg.Definitions(
        assets=[build_source_assets(source, env, retry) for source in sources],
        resources={"meltano": MeltanoResource(project_dir=str(project_dir))},
    )
