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

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from platform_assets import dbt_manifest, environment
from platform_assets.dbt_manifest import PREPARE_COMMAND, DbtManifestError
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

    def __init__(self, domain_by_model: Mapping[str, Domain], manifest: Mapping[str, Any]):
        super().__init__()
        self._domain_by_model = domain_by_model
        self._manifest = manifest

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        """Specs come from the whole manifest, whichever domain's slice asks: dagster-dbt memoizes them
        per manifest object, so shared upstream specs (staging, sources) are built once, not once per
        domain, and every spec carries the same manifest into the run."""
        return super().get_asset_spec(self._manifest, unique_id, project)

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dbt_manifest.model_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        domain = self._domain_by_model.get(dbt_resource_props["unique_id"])
        return domain.name if domain else super().get_group_name(dbt_resource_props)

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


def resolve_domains(
    manifest: Mapping[str, Any], declared: Sequence[DomainDecl] | None, manifest_path: Path
) -> list[Domain]:
    """Split the models into domains in one pass over the manifest, checking each model has exactly one.

    Domains are the manifest's dbt groups (or the declared list); a model belongs to the domain whose tag
    it carries.
    """
    names = (
        [decl.name for decl in declared]
        if declared
        else sorted(group["name"] for group in manifest.get("groups", {}).values())
    )
    if not names:
        raise DbtManifestError(
            f"{manifest_path} defines no dbt groups, so there are no domains. Declare each domain as a dbt "
            "group in dbt_project/models/domains.yml and tag its models with the group's name."
        )
    members: dict[str, set[str]] = {name: set() for name in names}
    problems = []
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] != "model" or node["config"].get("materialized") == "ephemeral":
            continue
        tagged = [name for name in names if name in node["tags"]]
        if len(tagged) == 1:
            members[tagged[0]].add(unique_id)
        elif not declared or tagged:
            problems.append(f"  {node['original_file_path']}: domain tags {tagged or 'none'}")
    if problems:
        raise DbtManifestError(
            f"Each dbt model needs exactly one domain tag (one of {', '.join(names)}):\n"
            + "\n".join(problems)
            + "\nSet the model's tags (per folder in dbt_project/dbt_project.yml), then run "
            f"`{PREPARE_COMMAND}`."
        )
    owners = {decl.name: tuple(decl.owners or ()) for decl in declared or ()}
    empty = [name for name, ids in members.items() if not ids]
    if empty:
        raise DbtManifestError(
            f"No dbt model carries the tag of domain(s) {', '.join(empty)} in {manifest_path}. Tag the "
            f"domain's models, or remove the domain, then run `{PREPARE_COMMAND}`."
        )
    return [Domain(name, frozenset(members[name]), owners.get(name, ())) for name in names]


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


def build_domain_assets(
    domain: Domain,
    manifest: Mapping[str, Any],
    project: DbtProject,
    translator: PlatformDbtTranslator,
    exclude: str | None,
    pool: str,
    run_first: bool = False,
) -> dg.AssetsDefinition:
    """One domain's models, selected by its tag; `dbt build` runs them with their tests."""

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
    def _domain_assets(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build"], context=context).stream()

    return _domain_assets


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
        translator = PlatformDbtTranslator(domain_by_model, manifest)
        exclude = self.excluded_selection()
        assets = [
            build_domain_assets(
                domain, manifest, project, translator, exclude, self.pool, domain.name in self.run_first
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


def prepare_manifest(project_dir: Path = environment.DBT_PROJECT_DIR) -> Path:
    """Parse the dbt project into target/manifest.json for the current environment."""
    project = DbtProject(project_dir)
    dbt_resource(Path(project.project_dir)).cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return project.manifest_path


if __name__ == "__main__":
    print(f"dbt manifest prepared: {prepare_manifest()}", file=sys.stderr)
