"""dbt domains as Dagster assets: one `@dbt_assets` definition per domain, so each domain runs on its own.

A domain is a dbt group (owner and description in dbt_project/models/domains.yml) whose models carry the
tag of the same name. Everything here is derived from the prepared manifest (target/manifest.json), read
once per definitions load; dbt is never invoked at load. Prepare the manifest with:

    python -m platform_assets.components.dbt_domains

Asset keys are `[<custom schema>, <model>]` (stable across environments: the ci prefix is not part of
the key); group = domain; kinds {dbt, duckdb|snowflake}; tag layer=transformation. dbt tests are asset
checks, blocking where the dbt test's severity is `error` (the activation models) — dagster-dbt's own
severity mechanism, so dbt and Dagster agree on what stops a sync.
"""

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pydantic
from dagster_dbt import (
    DagsterDbtCliRuntimeError,
    DagsterDbtTranslator,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from platform_assets import dbt_manifest, environment
from platform_assets.components import dbt_test_placement
from platform_assets.dbt_manifest import PREPARE_COMMAND, DbtManifestError
from platform_assets.integrations.dbt.resource import keep_partial_parse
from platform_assets.resources import dbt_resource


@dataclass(frozen=True)
class Domain:
    name: str
    model_ids: frozenset[str]
    owners: tuple[str, ...] = ()


class PlatformDbtTranslator(DagsterDbtTranslator):
    """Keys `[schema, model]`, group = domain, owners from the domain, tag layer=transformation.

    Kinds (dbt + the adapter) come from the manifest, which check_adapter ties to the environment.
    """

    def __init__(
        self,
        domain_by_model: Mapping[str, Domain],
        manifest: Mapping[str, Any],
        test_reads: Mapping[str, set[str]] | None = None,
    ):
        super().__init__()
        self._domain_by_model = domain_by_model
        self._manifest = manifest
        self._test_reads = test_reads or {}

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        """Specs come from the whole manifest, whichever domain's slice asks: dagster-dbt memoizes them
        per manifest object, so shared upstream specs (staging, sources) are built once, not once per
        domain, and every spec carries the same manifest into the run."""
        spec = super().get_asset_spec(self._manifest, unique_id, project)
        reads = self._test_reads.get(unique_id)
        if not reads:
            return spec
        # What this resource's tests read in other domains (dbt_test_placement.cross_domain_reads).
        read_keys = {self.get_asset_spec(manifest, read, project).key for read in sorted(reads)}
        return spec.merge_attributes(deps=sorted(read_keys - {dep.asset_key for dep in spec.deps}))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dbt_manifest.model_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        # A resource's own meta.dagster.group wins, as dagster-dbt documents; else its domain.
        domain = self._domain_by_model.get(dbt_resource_props["unique_id"])
        configured = dbt_manifest.dagster_meta(dbt_resource_props).get("group")
        return configured or (domain.name if domain else super().get_group_name(dbt_resource_props))

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        domain = self._domain_by_model.get(dbt_resource_props["unique_id"])
        if domain and domain.owners:
            return list(domain.owners)
        return super().get_owners(dbt_resource_props)

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        return {**super().get_tags(dbt_resource_props), "layer": "transformation"}


def check_adapter(manifest: dbt_manifest.DbtManifest, env: environment.PlatformEnvironment) -> None:
    """A manifest prepared for another warehouse would show wrong kinds and relation names: refuse it."""
    expected = "duckdb" if env.is_local else "snowflake"
    if manifest.adapter_type != expected:
        raise DbtManifestError(
            f"{manifest.path} was prepared for {manifest.adapter_type}, but PLATFORM_ENV={env.mode} runs dbt "
            f"on {expected}. Prepare the manifest in this environment: `{PREPARE_COMMAND}`."
        )


class DomainDecl(dg.Model):
    """A domain declared in defs.yaml, to restrict the domains or override their owners."""

    name: str
    owners: list[str] | None = None


# dbt resources that are Dagster assets and belong to a domain (ephemeral models are not assets).
DOMAIN_RESOURCE_TYPES = ("model", "seed", "snapshot")


def is_domain_resource(node: Mapping[str, Any]) -> bool:
    return (
        node["resource_type"] in DOMAIN_RESOURCE_TYPES and node["config"].get("materialized") != "ephemeral"
    )


def resolve_domains(
    manifest: Mapping[str, Any], declared: Sequence[DomainDecl] | None, manifest_path: Path
) -> list[Domain]:
    """Split models, seeds and snapshots into domains in one pass, checking each has exactly one.

    Domains are the manifest's dbt groups (or the declared list); a resource belongs to the domain whose
    tag it carries, and its dbt group, where set, must be that domain.
    """
    groups = {group["name"]: group for group in manifest.get("groups", {}).values()}
    names = [decl.name for decl in declared] if declared else sorted(groups)
    if not names:
        raise DbtManifestError(
            f"{manifest_path} defines no dbt groups, so there are no domains. Declare each domain as a dbt "
            "group (a `groups:` entry in a YAML file under models/) and tag its resources with its name."
        )
    members: dict[str, set[str]] = {name: set() for name in names}
    problems = []
    for unique_id, node in manifest["nodes"].items():
        if not is_domain_resource(node):
            continue
        tagged = [name for name in names if name in node["tags"]]
        group = node["config"].get("group")
        if len(tagged) == 1 and group in (None, tagged[0]):
            members[tagged[0]].add(unique_id)
        elif len(tagged) == 1:
            problems.append(
                f"  {node['original_file_path']}: domain tag {tagged[0]!r} but dbt group {group!r}"
            )
        elif not declared or tagged:
            problems.append(f"  {node['original_file_path']}: domain tags {tagged or 'none'}")
    if problems:
        raise DbtManifestError(
            f"Each dbt model, seed and snapshot needs exactly one domain tag (one of {', '.join(names)}), "
            "and its dbt group, if set, must be that domain:\n"
            + "\n".join(problems)
            + "\nSet `+tags` and `+group` per folder under `models:`, `seeds:` or `snapshots:` in "
            f"dbt_project.yml (or in the resource's config), then run `{PREPARE_COMMAND}`."
        )
    empty = [name for name, ids in members.items() if not ids]
    if empty:
        raise DbtManifestError(
            f"No dbt resource carries the tag of domain(s) {', '.join(empty)} in {manifest_path}. Tag the "
            f"domain's resources, or remove the domain, then run `{PREPARE_COMMAND}`."
        )
    declared_owners = {decl.name: tuple(decl.owners or ()) for decl in declared or ()}
    return [
        Domain(name, frozenset(members[name]), declared_owners.get(name) or _group_owner(groups.get(name)))
        for name in names
    ]


def _group_owner(group: Mapping[str, Any] | None) -> tuple[str, ...]:
    email = ((group or {}).get("owner") or {}).get("email")
    return (email,) if isinstance(email, str) else ()


# The manifest's node collections; a domain's slice keeps only its own nodes in each.
_NODE_COLLECTIONS = (
    "nodes",
    "sources",
    "exposures",
    "metrics",
    "semantic_models",
    "saved_queries",
    "unit_tests",
    "functions",
)


def domain_manifest(manifest: Mapping[str, Any], domain: Domain) -> dict[str, Any]:
    """The manifest cut down to one domain: its models, their tests, and everything upstream of both.

    dagster-dbt runs dbt's selection engine over the whole manifest it is given, once per `@dbt_assets`;
    with one definition per domain that made load time grow with domains x project size. Upstream nodes
    stay (dagster-dbt resolves each dependency's asset key from its node, recursively), so keys, lineage
    and checks are the same as over the full manifest; only nodes the domain cannot reach are left out.
    """
    parents, children = manifest["parent_map"], manifest["child_map"]
    tests = (
        child for model in domain.model_ids for child in children.get(model, ()) if child.startswith("test.")
    )
    pending, keep = [*domain.model_ids, *tests], set()
    while pending:
        unique_id = pending.pop()
        if unique_id not in keep:
            keep.add(unique_id)
            pending.extend(parents.get(unique_id, ()))
    sliced = {
        collection: {unique_id: node for unique_id, node in manifest[collection].items() if unique_id in keep}
        for collection in _NODE_COLLECTIONS
        if collection in manifest
    }
    return {
        **manifest,
        **sliced,
        "parent_map": {unique_id: parents[unique_id] for unique_id in keep if unique_id in parents},
        "child_map": {unique_id: [c for c in children.get(unique_id, ()) if c in keep] for unique_id in keep},
    }


class DbtRunConfig(dg.Config):
    """Run configuration of a domain's dbt step (the launchpad shows it on the dbt assets)."""

    full_refresh: bool = pydantic.Field(
        default=False,
        description="Rebuild incremental models and snapshots from scratch (dbt --full-refresh).",
    )
    vars: dict[str, Any] = pydantic.Field(
        default={}, description="dbt vars for this run (dbt --vars), over the project's defaults."
    )

    def dbt_args(self) -> list[str]:
        return [
            *(["--full-refresh"] if self.full_refresh else []),
            *(["--vars", json.dumps(self.vars)] if self.vars else []),
        ]


def build_domain_assets(
    domain: Domain,
    manifest: Mapping[str, Any],
    project: DbtProject,
    translator: PlatformDbtTranslator,
    exclude: str | None,
    pool: str,
    run_first: bool = False,
    other_domains_tests: Sequence[str] = (),
) -> dg.AssetsDefinition:
    """One domain's models, seeds and snapshots, selected by its tag; `dbt build` runs them with the tests
    placed in this domain (dbt_test_placement): the ones eager selection adds for other domains are excluded.
    """
    placement_args = ["--exclude", " ".join(other_domains_tests)] if other_domains_tests else []

    @dbt_assets(
        manifest=domain_manifest(manifest, domain),
        project=project,
        select=f"tag:{domain.name}",
        exclude=exclude,
        name=f"dbt_{domain.name}",
        dagster_dbt_translator=translator,
        pool=pool,
        op_tags={"dagster/priority": "1"} if run_first else None,
    )
    def _domain_assets(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtRunConfig):
        invocation = dbt.cli(["build", *config.dbt_args(), *placement_args], context=context)
        try:
            # Public per-event API instead of .stream(), to also show unit tests, which dagster-dbt skips.
            for event in invocation.stream_raw_events():
                yield from event.to_default_asset_events(
                    manifest=invocation.manifest,
                    dagster_dbt_translator=translator,
                    context=context,
                    target_path=invocation.target_path,
                    project=project,
                )
                yield from unit_test_observations(event.raw_event, manifest, translator, project)
        finally:  # dbt parsed whether or not the build passed
            keep_partial_parse(invocation.target_path, Path(project.project_dir) / project.target_path)

    return _domain_assets


def unit_test_observations(
    raw_event: Mapping[str, Any],
    manifest: Mapping[str, Any],
    translator: PlatformDbtTranslator,
    project: DbtProject,
) -> Iterator[dg.AssetObservation]:
    """A dbt unit test's result as an observation of the model it tests.

    dagster-dbt 0.29 turns no unit test result into a Dagster event. dbt itself enforces a failure: the
    model is skipped and `dbt build` fails, so the step fails; this makes the result visible on the model.
    """
    node_info = raw_event["data"].get("node_info") or {}
    unique_id = node_info.get("unique_id", "")
    if raw_event["info"]["name"] != "LogTestResult" or not unique_id.startswith("unit_test."):
        return
    unit_test = manifest["unit_tests"][unique_id]
    model_id = unit_test["depends_on"]["nodes"][0]  # a unit test depends on its model only
    status = str(raw_event["data"].get("status") or node_info.get("node_status"))
    yield dg.AssetObservation(
        asset_key=translator.get_asset_spec(manifest, model_id, project).key,
        description=f"dbt unit test {unit_test['name']}: {status}",
        metadata={
            "dbt_unit_test": unit_test["name"],
            "dbt_unit_test_status": status,
            "dbt_unit_test_file": unit_test["original_file_path"],
        },
    )


class DbtDomainsComponent(dg.Component, dg.Model, dg.Resolvable):
    """The dbt project as one asset definition per domain, plus a job that builds every domain."""

    project_dir: str = "dbt_project"
    """The dbt project, relative to the Dagster project root."""
    domains: list[DomainDecl] | None = None
    """Optional: restrict to these domains or override their owners; default: every dbt group."""
    pool: str = "warehouse"
    """Concurrency pool of the dbt runs (local DuckDB allows one writer)."""
    build_all_job: str = "dbt_build_all"
    run_first: list[str] = []
    """Domains whose step goes first when one run builds several (Dagster's `dagster/priority` op tag):
    the domain that feeds Salesforce syncs, so its syncs can start while other domains still build."""

    exclude_tags_unless_set: dict[str, str] = {}
    """dbt tag -> environment variable: models with the tag are left out entirely where the variable is
    unset (e.g. the models of a source that is only configured in some environments, whose raw tables
    do not exist elsewhere)."""

    def excluded_selection(self) -> str | None:
        """dbt's --exclude for the tags whose variable is unset (a space is a union in dbt selection)."""
        unset = [
            tag for tag, variable in self.exclude_tags_unless_set.items() if not os.environ.get(variable)
        ]
        return " ".join(f"tag:{tag}" for tag in unset) or None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        env = environment.current()
        project = DbtProject(context.project_root / self.project_dir)
        prepared = dbt_manifest.read(Path(project.manifest_path))
        check_adapter(prepared, env)
        manifest = prepared.document
        domains = resolve_domains(manifest, self.domains, project.manifest_path)
        unknown = sorted(set(self.run_first) - {domain.name for domain in domains})
        if unknown:
            raise DbtManifestError(
                f"run_first names {', '.join(unknown)}, which are not domains "
                f"({', '.join(d.name for d in domains)}). Fix `run_first` in the transformation defs.yaml."
            )
        domain_by_model = {unique_id: domain for domain in domains for unique_id in domain.model_ids}
        domain_of = dbt_test_placement.tag_domains(manifest, [domain.name for domain in domains])
        placed = dbt_test_placement.place_tests(manifest, domain_of)
        test_reads = dbt_test_placement.cross_domain_reads(manifest, domain_of, placed)
        translator = PlatformDbtTranslator(domain_by_model, manifest, test_reads)
        exclude = self.excluded_selection()
        assets = [
            build_domain_assets(
                domain,
                manifest,
                project,
                translator,
                exclude,
                self.pool,
                domain.name in self.run_first,
                dbt_test_placement.foreign_tests(manifest, domain.name, domain_of, placed),
            )
            for domain in domains
        ]
        build_all = dg.define_asset_job(
            self.build_all_job,
            selection=dg.AssetSelection.assets(*assets),
            description="Build every dbt domain (models and tests) in dependency order.",
        )
        return dg.Definitions(
            assets=assets, jobs=[build_all], resources={"dbt": dbt_resource(Path(project.project_dir), env)}
        )


PACKAGE_FILES = ("packages.yml", "dependencies.yml")


def declared_packages(project_dir: Path) -> list[Path]:
    """The project's dbt package declarations (packages.yml / dependencies.yml) that exist."""
    return [project_dir / name for name in PACKAGE_FILES if (project_dir / name).is_file()]


def install_packages(project_dir: Path = environment.DBT_PROJECT_DIR) -> None:
    """`dbt deps`, where the project declares packages; offline, say how to vendor them."""
    declarations = declared_packages(project_dir)
    if not declarations:
        return
    try:
        dbt_resource(project_dir).cli(["deps"]).wait()
    except DagsterDbtCliRuntimeError as error:
        raise DbtManifestError(
            f"`dbt deps` could not install the packages declared in {declarations[0]} ({error}). Without "
            "network access, vendor them: copy each package into the project (e.g. `packages/<name>/`) and "
            "declare it as `- local: packages/<name>` in packages.yml; local packages install offline."
        ) from error


def prepare_manifest(project_dir: Path = environment.DBT_PROJECT_DIR, install: bool = False) -> Path:
    """Parse the dbt project into target/manifest.json for the current environment.

    Packages are installed first where asked, or where declared and never installed (a fresh checkout).
    """
    project = DbtProject(project_dir)
    if install or (
        declared_packages(Path(project_dir)) and not (Path(project_dir) / "dbt_packages").exists()
    ):
        install_packages(Path(project_dir))
    dbt_resource(Path(project.project_dir)).cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return project.manifest_path


if __name__ == "__main__":
    # `deps`: (re)install the declared dbt packages (set-up runs it when packages.yml changes).
    if sys.argv[1:] == ["deps"]:
        install_packages()
        print("dbt packages installed", file=sys.stderr)
    else:
        print(f"dbt manifest prepared: {prepare_manifest()}", file=sys.stderr)
