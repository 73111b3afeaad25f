"""Declarative Salesforce syncs: one YAML document per sync, validated when definitions load.

A document names the dbt model to read, the sObject to write, the mode and the column -> field mapping.
Every mistake is reported with the file, the key and the fix, before any asset is built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from platform_assets.dbt_manifest import DbtManifest, resolve_model
from platform_assets.integrations.salesforce.orgs import OrgConfigError, OrgRegistry, load_orgs

SyncMode = Literal["upsert", "update", "insert", "mirror"]
MODES: tuple[str, ...] = ("upsert", "update", "insert", "mirror")
PolicyName = Literal["warehouse_wins", "salesforce_wins", "last_writer_wins", "custom"]
POLICIES: tuple[str, ...] = ("warehouse_wins", "salesforce_wins", "last_writer_wins", "custom")
# The names a custom conflict expression reads (columns of the conflicts table).
VALUE_NAMES = ("warehouse_value", "salesforce_value")
TIME_NAMES = ("warehouse_changed_at", "salesforce_changed_at")

# Bulk API 2.0 takes up to 150M records per 24h; one job per batch keeps results small enough to read.
MAX_BATCH_SIZE = 150_000
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")

# What to do about a wrong key: shown next to the error.
_FIXES: dict[str, str] = {
    "name": "use a lowercase snake_case name, unique across syncs (the asset key is salesforce/<name>)",
    "model": "name a model of the dbt project: `name`, or `schema.name` (the schema of its asset key)",
    "object": "name the Salesforce sObject API name, e.g. Lead, Account, Opportunity, Task",
    "mode": f"use one of: {', '.join(MODES)}",
    "external_id_field": "name the sObject's External ID field (e.g. Signup_Id__c), needed by upsert/mirror",
    "primary_key": "name the model column that identifies a row (unique, not null)",
    "mapping": "map model columns to Salesforce field API names: `mapping: {model_column: Field__c}`",
    "batch_size": f"use a whole number of records per Bulk job between 1 and {MAX_BATCH_SIZE}",
    "owners": "list owners as strings, e.g. ['team:revops', 'someone@example.com']",
    "description": "write the description as a string",
    "automation": "write automation settings as a mapping (read by the automation component)",
    "conflict_policy": f"use one of: {', '.join(POLICIES)} (custom as `{{policy: custom, expression: ...}}`)",
    "field_conflict_policies": "key it by fields of `mapping` (not the key field), each with a policy, "
    "e.g. `{Title: salesforce_wins}`",
    "*.expression": "write `expression` (policy custom only) as SQL over warehouse_value, salesforce_value "
    "(text) and warehouse_changed_at, salesforce_changed_at (timestamps) giving the value to write",
    "salesforce_data": "name the extracted Salesforce records of the object as `schema.table`, "
    "e.g. raw_salesforce.lead (schema without the environment prefix)",
    "changed_at_column": "name the model column holding when the row last changed (a timestamp)",
    "org": "name an org declared in orgs.yaml, or leave `org` out for the default org",
}


class SyncConfigError(ValueError):
    """A sync document is wrong; the message names the file, the key and the fix."""


class ConflictRule(pydantic.BaseModel):
    """Who wins when a field changed both in the warehouse and in Salesforce; a plain string is the policy."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    policy: PolicyName
    expression: str | None = None
    """custom only: SQL over warehouse_value, salesforce_value (text), warehouse_changed_at and
    salesforce_changed_at (timestamps) giving the value to write; Salesforce's value leaves it alone."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"policy": value} if isinstance(value, str) else value

    def reads(self, name: str) -> bool:
        return re.search(rf"\b{name}\b", self.expression or "", re.IGNORECASE) is not None


class SyncSpec(pydantic.BaseModel):
    """One Salesforce sync as declared in defs/activation/salesforce/syncs/<name>.yaml."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    name: str
    model: str
    object: str
    mode: SyncMode
    primary_key: str
    mapping: dict[str, str]
    external_id_field: str | None = None
    batch_size: int = pydantic.Field(default=10_000, ge=1, le=MAX_BATCH_SIZE)
    description: str | None = None
    owners: list[str] = pydantic.Field(default_factory=list)
    automation: dict[str, Any] | None = None
    """Passed through untouched for the automation component (schedules, sensors)."""
    conflict_policy: ConflictRule | None = None
    """The sync's conflict policy; declaring one (or field_conflict_policies) turns detection on."""
    field_conflict_policies: dict[str, ConflictRule] = pydantic.Field(default_factory=dict)
    """Salesforce field -> policy, overriding conflict_policy for that field."""
    salesforce_data: str | None = None
    """`schema.table` of the object's extracted records (Id, mapped fields, SystemModstamp)."""
    changed_at_column: str | None = None
    """The model column with the row's own change time (last_writer_wins, custom timestamps)."""
    org: str | None = None
    """The Salesforce org (orgs.yaml) written to; left out: the default org (filled in at load)."""
    source_file: str = pydantic.Field(default="", exclude=True)
    org_state_key: str = pydantic.Field(default="", exclude=True)
    """Set at load from the org: the key of this sync's state rows (see `state_key`)."""

    @property
    def state_key(self) -> str:
        """The key of this sync's rows in the state tables: its name in the default org, `<org>/<name>`
        in another, so a record synced to one org is never taken as synced to another."""
        return self.org_state_key or self.name

    @property
    def asset_key(self) -> list[str]:
        return ["salesforce", self.name]

    @property
    def model_name(self) -> str:
        """The model's name (`model` is `name`, or `schema.name` where no manifest is prepared)."""
        return self.model.rpartition(".")[2]

    @property
    def operation(self) -> str:
        """The Bulk 2.0 operation for added and changed rows (removed rows in mirror mode are deletes)."""
        return "upsert" if self.mode == "mirror" else self.mode

    @property
    def key_field(self) -> str | None:
        """The Salesforce field whose value identifies a record in results: the External ID or Id."""
        if self.mode in ("upsert", "mirror"):
            return self.external_id_field
        if self.mode == "update":
            return "Id"
        return None

    def column_for(self, field: str) -> str | None:
        """The model column mapped to a Salesforce field (case-insensitive, as Salesforce is)."""
        return next((c for c, f in self.mapping.items() if f.lower() == field.lower()), None)

    @property
    def detects_conflicts(self) -> bool:
        return self.conflict_policy is not None or bool(self.field_conflict_policies)

    def conflict_rules(self) -> dict[str, ConflictRule]:
        """Salesforce field -> its rule, for every mapped field a conflict can touch (not the key fields)."""
        if not self.detects_conflicts:
            return {}
        default = self.conflict_policy or ConflictRule(policy="warehouse_wins")
        overrides = {f.lower(): rule for f, rule in self.field_conflict_policies.items()}
        keys = {k.lower() for k in (self.external_id_field, "Id") if k}
        return {
            field: overrides.get(field.lower(), default)
            for field in self.mapping.values()
            if field.lower() not in keys
        }

    def signature(self) -> str:
        """What the row hash depends on besides the data: a mapping change re-sends every row."""
        parts = {"object": self.object, "mode": self.mode, "mapping": sorted(self.mapping.items())}
        return json.dumps(parts, sort_keys=True)


def _problem(path: Path, key: str, message: str) -> str:
    fix = _FIXES.get(f"*.{key.rpartition('.')[2]}") or _FIXES.get(key.split(".")[0], "")
    return f"{path}: key '{key}': {message}" + (f". Fix: {fix}." if fix else ".")


def _check_semantics(spec: SyncSpec, path: Path) -> list[str]:
    problems: list[str] = []
    if not _NAME.match(spec.name):
        problems.append(_problem(path, "name", f"{spec.name!r} is not a lowercase snake_case name"))
    for key, value in (("model", spec.model_name), ("primary_key", spec.primary_key)):
        if not _IDENTIFIER.match(value):
            problems.append(_problem(path, key, f"{value!r} is not a plain warehouse identifier"))
    if not spec.mapping:
        problems.append(_problem(path, "mapping", "the mapping is empty"))
    for column, field in spec.mapping.items():
        if not _IDENTIFIER.match(column):
            problems.append(_problem(path, f"mapping.{column}", "the model column is not a plain identifier"))
        if not _FIELD.match(field):
            problems.append(
                _problem(path, f"mapping.{column}", f"{field!r} is not a Salesforce field API name")
            )
    targets = [f.lower() for f in spec.mapping.values()]
    duplicated = sorted({f for f in targets if targets.count(f) > 1})
    if duplicated:
        problems.append(_problem(path, "mapping", f"fields mapped twice: {', '.join(duplicated)}"))
    for owner in spec.owners:
        if not (_EMAIL.match(owner) or (owner.startswith("team:") and len(owner) > 5)):
            problems.append(_problem(path, "owners", f"{owner!r} is neither an e-mail nor 'team:<name>'"))
    problems.extend(_check_key_columns(spec, path))
    problems.extend(_check_conflicts(spec, path))
    return problems


def _check_conflicts(spec: SyncSpec, path: Path) -> list[str]:
    """Conflict policies need the extracted data, fields of the mapping and, per policy, their parts."""
    if not spec.detects_conflicts:
        for key in ("salesforce_data", "changed_at_column"):
            if getattr(spec, key):
                problems = [
                    _problem(path, key, "is only used with conflict_policy; declare one or remove it")
                ]
                return problems
        return []
    problems: list[str] = []
    if spec.mode == "insert":
        problems.append(
            _problem(
                path, "conflict_policy", "mode insert never writes a record twice, so it has no conflicts"
            )
        )
    if not spec.salesforce_data:
        problems.append(_problem(path, "salesforce_data", "conflict detection needs the extracted records"))
    elif not re.match(r"^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$", spec.salesforce_data):
        problems.append(_problem(path, "salesforce_data", f"{spec.salesforce_data!r} is not `schema.table`"))
    if spec.changed_at_column and not _IDENTIFIER.match(spec.changed_at_column):
        problems.append(_problem(path, "changed_at_column", "the model column is not a plain identifier"))
    rules = spec.conflict_rules()
    mapped = {f.lower() for f in rules}
    for field in spec.field_conflict_policies:
        if field.lower() not in mapped:
            problems.append(
                _problem(
                    path,
                    f"field_conflict_policies.{field}",
                    f"{field} is not a mapped field a conflict can touch (mapped: {', '.join(rules)})",
                )
            )
    declared = [("conflict_policy", spec.conflict_policy)] if spec.conflict_policy else []
    declared += [(f"field_conflict_policies.{f}", r) for f, r in spec.field_conflict_policies.items()]
    for key, rule in declared:
        problems.extend(_check_rule(spec, path, key, rule))
    return problems


def _check_rule(spec: SyncSpec, path: Path, key: str, rule: ConflictRule) -> list[str]:
    if rule.policy != "custom":
        if rule.expression is not None:
            return [
                _problem(
                    path, f"{key}.expression", f"only policy custom takes an expression, not {rule.policy}"
                )
            ]
        if rule.policy == "last_writer_wins" and not spec.changed_at_column:
            return [
                _problem(path, "changed_at_column", f"{key}: last_writer_wins needs the row's change time")
            ]
        return []
    expression = (rule.expression or "").strip()
    if not expression:
        return [
            _problem(
                path,
                f"{key}.expression",
                "policy custom needs an expression: SQL over warehouse_value, salesforce_value, "
                "warehouse_changed_at, salesforce_changed_at giving the value to write",
            )
        ]
    problems = []
    if not any(rule.reads(name) for name in VALUE_NAMES):
        problems.append(
            _problem(
                path, f"{key}.expression", "the expression reads neither warehouse_value nor salesforce_value"
            )
        )
    if ";" in expression:
        problems.append(_problem(path, f"{key}.expression", "one SQL expression, without ';'"))
    if rule.reads("warehouse_changed_at") and not spec.changed_at_column:
        problems.append(
            _problem(path, "changed_at_column", f"{key}: the expression reads warehouse_changed_at")
        )
    return problems


def _check_key_columns(spec: SyncSpec, path: Path) -> list[str]:
    """Each mode needs a way to find the record in Salesforce; say which key is missing."""
    problems: list[str] = []
    if spec.mode in ("upsert", "mirror"):
        if not spec.external_id_field:
            problems.append(_problem(path, "external_id_field", f"mode {spec.mode} needs external_id_field"))
        elif spec.column_for(spec.external_id_field) is None:
            problems.append(
                _problem(
                    path,
                    "mapping",
                    f"no model column is mapped to the External ID field {spec.external_id_field} "
                    f"(add `<key column>: {spec.external_id_field}`)",
                )
            )
    elif spec.mode == "update":
        if spec.column_for("Id") is None and not spec.external_id_field:
            problems.append(
                _problem(
                    path,
                    "external_id_field",
                    "mode update needs the record Id: map a column to `Id`, or set external_id_field to a "
                    "unique field whose mapped value finds the record (looked up before sending)",
                )
            )
        elif spec.external_id_field and spec.column_for(spec.external_id_field) is None:
            problems.append(
                _problem(
                    path,
                    "mapping",
                    f"no model column is mapped to the lookup field {spec.external_id_field}",
                )
            )
    elif spec.mode == "insert" and spec.external_id_field:
        problems.append(
            _problem(path, "external_id_field", "mode insert does not use external_id_field; remove it")
        )
    return problems


def _format_validation_error(path: Path, error: pydantic.ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<document>"
        if item["type"] == "missing":
            message = "is missing"
        elif item["type"] == "extra_forbidden":
            message = "is not a sync setting (check the spelling)"
            problems.append(
                f"{path}: key '{key}': {message}. Known keys: "
                f"{', '.join(n for n in SyncSpec.model_fields if n not in ('source_file', 'org_state_key'))}."
            )
            continue
        else:
            message = item["msg"]
        problems.append(_problem(path, key, message))
    return problems


def load_sync_file(path: Path) -> SyncSpec:
    """Parse and validate one sync document; raises SyncConfigError naming file, key and fix."""
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SyncConfigError(f"{path}: is not valid YAML: {exc}") from None
    if not isinstance(document, Mapping):
        raise SyncConfigError(
            f"{path}: a sync document must be a YAML mapping with keys name, model, object, mode, "
            f"primary_key, mapping (got {type(document).__name__})."
        )
    try:
        spec = SyncSpec.model_validate({**document, "source_file": str(path)})
    except pydantic.ValidationError as exc:
        raise SyncConfigError("\n".join(_format_validation_error(path, exc))) from None
    problems = _check_semantics(spec, path)
    if problems:
        raise SyncConfigError("\n".join(problems))
    return spec


def load_sync_specs(
    directory: Path, manifest: DbtManifest | None = None, orgs: OrgRegistry | None = None
) -> list[SyncSpec]:
    """Every sync document under `directory` (*.yaml, *.yml), checked together.

    Each sync's `org` is resolved against `orgs` (default: the orgs file, or the built-in single org):
    an unknown org fails load naming the file and key; the org fills in `org` and the state key.

    Each model is resolved (`dbt_manifest.resolve_model`): through the prepared dbt manifest, which catches
    a model name that does not exist; without it, only `schema.name` resolves.
    All problems of all files are reported at once.
    """
    if not directory.is_dir():
        raise SyncConfigError(
            f"{directory}: the syncs folder does not exist; create it with one YAML per sync."
        )
    problems: list[str] = []
    specs: list[SyncSpec] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            specs.append(load_sync_file(path))
        except SyncConfigError as exc:
            problems.append(str(exc))
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            problems.append(
                _problem(
                    Path(spec.source_file),
                    "name",
                    f"sync name {spec.name!r} is already used by {seen[spec.name]}",
                )
            )
        seen.setdefault(spec.name, spec.source_file)
    for spec in specs:
        try:
            resolve_model(spec.model, manifest)
        except ValueError as error:
            problems.append(_problem(Path(spec.source_file), "model", str(error)))
    orgs = orgs or load_orgs()
    resolved = []
    for spec in specs:
        try:
            org = orgs.get(spec.org, where=spec.source_file)
        except OrgConfigError as error:
            problems.append(str(error))
            continue
        resolved.append(spec.model_copy(update={"org": org.name, "org_state_key": org.state_key(spec.name)}))
    if problems:
        raise SyncConfigError("\n".join(problems))
    return resolved
