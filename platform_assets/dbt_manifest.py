"""The one reader of the prepared dbt manifest (dbt_project/target/manifest.json).

Every component that needs to know about dbt models asks here: the dbt domains (the whole document, for
dagster-dbt), and the Salesforce and Hightouch syncs ("model name -> asset key, blocking tests, schema").
The manifest is prepared at set-up, never at definitions load; it is parsed once per file version however
many components read it.

A model's asset key is `[<schema>, <model>]` (`<model>_v<n>` for each version of a versioned model): the
schema in its config (`+schema`), else the target's schema without the environment's prefix, so keys do
not change between local, ci and prod. A resource's own `meta.dagster.asset_key` wins, as in dagster-dbt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import dagster as dg

from platform_assets import environment

PREPARE_COMMAND = "python -m platform_assets.components.dbt_domains"
DEFAULT_MANIFEST_PATH = environment.DBT_PROJECT_DIR / "target" / "manifest.json"


class DbtManifestError(RuntimeError):
    """The prepared manifest is missing or does not describe the project consistently."""


def dagster_meta(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """A node's `meta.dagster` (config meta first, as dagster-dbt reads it)."""
    meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
    return meta.get("dagster") or {}


def model_asset_key(node: Mapping[str, Any]) -> dg.AssetKey:
    """The asset key of a dbt model, seed or snapshot node (see the module docstring)."""
    configured = dagster_meta(node).get("asset_key")
    if configured:
        return dg.AssetKey(configured)
    version = node.get("version")
    return dg.AssetKey(
        [_relation_schema(node), node["name"] if version is None else f"{node['name']}_v{version}"]
    )


def _relation_schema(node: Mapping[str, Any]) -> str:
    return (node.get("config") or {}).get("schema") or _unprefixed(node["schema"])


def _unprefixed(schema: str) -> str:
    """The target schema as every environment names it: ci's `ci_<branch>_` prefix removed."""
    prefix = environment.current().schema_prefix
    return schema[len(prefix) :] if prefix and schema.startswith(prefix) else schema


@dataclass(frozen=True)
class DbtModel:
    """What a sync needs to know about the dbt model it reads."""

    name: str
    asset_key: dg.AssetKey
    blocking_tests: tuple[str, ...] = ()
    """Names of the model's error-severity tests, which dagster-dbt makes blocking asset checks."""
    relation: tuple[str, str] | None = None
    """(schema without the environment's prefix, table) in the warehouse, where the manifest says."""

    @property
    def schema(self) -> str:
        """The model's schema without the environment's prefix (else the first part of its asset key)."""
        return self.relation[0] if self.relation else self.asset_key.path[0]

    @property
    def table(self) -> str:
        """The model's table (a versioned model's is `<name>_v<n>`, not its plain name)."""
        return self.relation[1] if self.relation else self.name


class DbtManifest:
    """A prepared manifest: the raw document, and its models by name."""

    def __init__(self, path: Path, document: Mapping[str, Any]):
        self.path = path
        self.document = document

    @property
    def adapter_type(self) -> str | None:
        return self.document.get("metadata", {}).get("adapter_type")

    @cached_property
    def models(self) -> dict[str, DbtModel]:
        nodes = self.document.get("nodes", {})
        tests: dict[str, list[str]] = {}
        for node in nodes.values():
            if node.get("resource_type") != "test":
                continue
            if str(node.get("config", {}).get("severity", "error")).lower() != "error":
                continue
            attached = node.get("attached_node") or next(
                iter(node.get("depends_on", {}).get("nodes", [])), None
            )
            if attached:
                tests.setdefault(attached, []).append(node["name"])
        models = {}
        for unique_id, node in nodes.items():
            if node.get("resource_type") not in ("model", "seed", "snapshot"):
                continue
            model = DbtModel(
                node["name"],
                model_asset_key(node),
                tuple(tests.get(unique_id, ())),
                (_relation_schema(node), node.get("alias") or node["name"]),
            )
            version, latest = node.get("version"), node.get("latest_version")
            if version is not None:
                models[model.asset_key.path[-1]] = model
            if version is None or str(version) == str(latest):
                models[node["name"]] = model  # a versioned model's plain name is its latest version
        return models

    def resolve(self, reference: str) -> DbtModel | None:
        """A model by `name` or `schema.name` (the schema must then match its key), else None."""
        schema, _, name = reference.rpartition(".")
        model = self.models.get(name)
        if model is None or (schema and schema != model.schema):
            return None
        return model


def resolve_model(reference: str, manifest: DbtManifest | None) -> DbtModel:
    """`name` or `schema.name` -> the model; raises ValueError saying what to fix.

    With the prepared manifest the model must be in it. Without one, only `schema.name` resolves (a bare
    name needs the manifest to find its schema), so a sync's declaration can be checked on its own.
    """
    if manifest is not None:
        model = manifest.resolve(reference)
        if model is None:
            raise ValueError(
                f"dbt model {reference!r} is not in the dbt manifest. Fix the name, or re-run "
                f"`{PREPARE_COMMAND}` if the model is new"
            )
        return model
    schema, _, name = reference.rpartition(".")
    if not schema:
        raise ValueError(
            f"cannot resolve {reference!r} to a dbt model key without the prepared dbt manifest: prepare it "
            f"(`{PREPARE_COMMAND}`) or write the model as '<schema>.<model>'"
        )
    return DbtModel(name=name, asset_key=dg.AssetKey([schema, name]))


def read_if_prepared(path: Path = DEFAULT_MANIFEST_PATH) -> DbtManifest | None:
    return read(path) if path.is_file() else None


def read(path: Path = DEFAULT_MANIFEST_PATH) -> DbtManifest:
    """The prepared manifest; a missing one fails with the command that prepares it."""
    if not path.is_file():
        raise DbtManifestError(
            f"The dbt manifest {path} does not exist, so the dbt models cannot be loaded. Prepare it once "
            f"after checkout and after every dbt change: `{PREPARE_COMMAND}` (runs `dbt parse`)."
        )
    stat = path.stat()
    return _parse(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _parse(path: str, _mtime_ns: int, _size: int) -> DbtManifest:
    """One parse per file version: the dbt, Salesforce and Hightouch components share it."""
    with open(path, "rb") as manifest_file:
        return DbtManifest(Path(path), json.load(manifest_file))
