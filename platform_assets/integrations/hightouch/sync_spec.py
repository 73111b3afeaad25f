"""Hightouch sync declarations: one YAML document per sync, validated when definitions load.

The local Hightouch sandbox is seeded from the same documents (`load_sync_declarations`), so the YAML is
the one source of truth for the assets and the sandbox.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from platform_assets.dbt_manifest import DbtManifest, DbtModel, resolve_model

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DOCS_HINT = "See docs/hightouch.md, 'Adding a Hightouch sync'."


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
class HightouchSync:
    """A validated sync: its declaration, where it came from and the models it reads."""

    declaration: SyncDeclaration
    source_file: Path
    model: DbtModel
    also_reads: tuple[DbtModel, ...]

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


def load_sync_declarations(syncs_dir: Path, manifest: DbtManifest | None = None) -> list[HightouchSync]:
    """Every syncs/*.yaml document, validated; fails naming the file and key of the first mistake.

    Models are resolved through the prepared dbt manifest; without one, only `schema.model` references
    resolve (a bare model name needs the manifest to find its schema).
    """
    if not syncs_dir.is_dir():
        raise HightouchSyncConfigError(f"{syncs_dir}: the Hightouch syncs folder does not exist. {DOCS_HINT}")
    syncs = [_load_one(path, manifest) for path in sorted(syncs_dir.glob("*.y*ml"))]
    _refuse_duplicates(syncs)
    return syncs


def _load_one(path: Path, manifest: DbtManifest | None) -> HightouchSync:
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
    model = _resolve_model(declaration.model, path, "model", manifest)
    also = tuple(
        _resolve_model(name, path, f"also_reads[{index}]", manifest)
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


def _resolve_model(reference: str, path: Path, key: str, manifest: DbtManifest | None) -> DbtModel:
    try:
        return resolve_model(reference, manifest)
    except ValueError as error:
        raise HightouchSyncConfigError(f"{path}: key '{key}': {error}. {DOCS_HINT}") from None


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
