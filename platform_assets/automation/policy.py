"""The platform-wide automation policy: one automation condition and freshness policy per asset.

`apply_platform_policy(defs)` runs once in definitions.py over everything loaded from defs/. Per asset it
combines, most specific last:
  1. the default of the asset's layer (tag `layer`), from `policy.layers` in defs/automation/defs.yaml;
  2. `policy.overrides` whose selection string selects the asset;
  3. the asset's own declaration: metadata `platform/automation` (or `automation`), e.g. a sync YAML's
     `automation:` mapping or a dbt model's `meta.platform.automation`, and for sources `platform/cadence`.
A condition or freshness policy the asset's component already set is kept unless (2) or (3) says otherwise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import dagster as dg

from platform_assets.automation import conditions
from platform_assets.automation.settings import (
    CADENCE_METADATA_KEYS,
    CADENCE_TAG,
    DECLARATION_METADATA_KEYS,
    LAYER_TAG,
    AutomationDeclaration,
    AutomationSettingsError,
    LayerPolicy,
    PolicySettings,
    parse_declaration,
)

logger = logging.getLogger(__name__)

POLICY_METADATA_KEY = "platform/automation_policy"
"""Definitions metadata key under which the automation component publishes its PolicySettings."""


def apply_platform_policy(defs: dg.Definitions, settings: PolicySettings | None = None) -> dg.Definitions:
    """Set automation conditions, freshness policies and cadence tags on every layer-tagged asset."""
    settings = settings or policy_settings_from(defs)
    overrides = _overrides_by_key(defs, settings)
    return defs.map_resolved_asset_specs(func=lambda spec: apply_to_spec(spec, settings, overrides))


def policy_settings_from(defs: dg.Definitions) -> PolicySettings:
    """The settings the automation component published, or the built-in defaults when it is absent."""
    published = (defs.metadata or {}).get(POLICY_METADATA_KEY)
    if published is None:
        return PolicySettings()
    data = getattr(published, "data", published)
    return PolicySettings.model_validate(json.loads(data) if isinstance(data, str) else data)


def _overrides_by_key(
    defs: dg.Definitions, settings: PolicySettings
) -> dict[dg.AssetKey, list[AutomationDeclaration]]:
    """Which overrides select which assets, resolved with Dagster's own selection syntax."""
    selected: dict[dg.AssetKey, list[AutomationDeclaration]] = {}
    for index, override in enumerate(settings.overrides):
        where = f"defs/automation/defs.yaml policy.overrides[{index}].select ({override.select!r})"
        matched: list[dg.AssetKey] = []

        def record(
            spec: dg.AssetSpec,
            declaration: AutomationDeclaration = override.automation,
            matched: list[dg.AssetKey] = matched,
        ) -> dg.AssetSpec:
            selected.setdefault(spec.key, []).append(declaration)
            matched.append(spec.key)
            return spec

        try:
            defs.map_resolved_asset_specs(func=record, selection=override.select)
        except dg.DagsterInvalidSubsetError:
            pass  # names an asset key that is not loaded: reported below like any empty selection
        except dg.DagsterError as error:  # a malformed selection string (its own class is not public)
            raise AutomationSettingsError(f"{where}: {error} (Dagster's asset selection syntax)") from error
        if not matched:
            # Not an error: an override may name assets of a source that this environment does not load.
            logger.warning("%s selects no asset: the override applies to nothing", where)
    return selected


def _metadata_value(metadata: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in metadata:
            value = metadata[key]
            value = getattr(value, "data", getattr(value, "value", value))
            return json.loads(value) if isinstance(value, str) and value.startswith("{") else value
    return None


def declaration_of(
    spec: dg.AssetSpec, extra: list[AutomationDeclaration] | None = None
) -> AutomationDeclaration:
    """The asset's effective declaration: overrides first, then its own metadata (which wins)."""
    source = _metadata_value(spec.metadata, ("source_file",))
    where = f"asset {spec.key.to_user_string()}" + (f" (declared in {source})" if source else "")
    raw = _metadata_value(spec.metadata, DECLARATION_METADATA_KEYS)
    cadence = _metadata_value(spec.metadata, CADENCE_METADATA_KEYS)
    if cadence is not None and isinstance(raw, dict | None):
        raw = {"cadence": cadence, **(raw or {})}
    own = parse_declaration(raw, where)
    merged: dict[str, Any] = {}
    for declaration in [*(extra or []), own]:
        merged.update({field: getattr(declaration, field) for field in declaration.model_fields_set})
    return AutomationDeclaration.model_validate(merged)


def apply_to_spec(
    spec: dg.AssetSpec,
    settings: PolicySettings,
    overrides: Mapping[dg.AssetKey, list[AutomationDeclaration]] | None = None,
) -> dg.AssetSpec:
    layer = spec.tags.get(LAYER_TAG)
    if layer not in settings.layers:
        return spec
    extra = list((overrides or {}).get(spec.key, []))
    declaration = declaration_of(spec, extra)
    layer_policy = settings.layers[layer]
    declared = bool(declaration.model_fields_set) or bool(extra)
    try:
        if layer == "ingestion":
            condition, cadence = _ingestion_condition(declaration, settings)
            spec = spec.merge_attributes(tags={CADENCE_TAG: cadence})
        else:
            condition = _downstream_condition(declaration, layer_policy, settings)
        freshness = _freshness(spec, declaration, layer_policy)
    except AutomationSettingsError as error:
        raise AutomationSettingsError(f"asset {spec.key.to_user_string()}: {error}") from None
    keep_condition = spec.automation_condition is not None and not declared
    return spec.replace_attributes(
        automation_condition=spec.automation_condition if keep_condition else condition,
        freshness_policy=freshness,
    )


def _ingestion_condition(
    declaration: AutomationDeclaration, settings: PolicySettings
) -> tuple[dg.AutomationCondition | None, str]:
    """(condition, cadence tag): sources without their own cadence are started by the cycle schedule."""
    timezone = declaration.timezone or settings.cycle.timezone
    if declaration.condition == "manual":
        return None, "manual"
    if declaration.condition in ("eager", "on_cron"):
        return _downstream_condition(declaration, LayerPolicy(condition="eager"), settings), "own"
    cron = declaration.cadence if declaration.cadence not in (None, "cycle") else declaration.cron
    if cron is None or (cron, timezone) == (settings.cycle.cron, settings.cycle.timezone):
        return None, "cycle"  # a cadence equal to the cycle's is the cycle: its schedule starts the source
    return conditions.on_cadence(cron, timezone), "own"


def _downstream_condition(
    declaration: AutomationDeclaration, layer_policy: LayerPolicy, settings: PolicySettings
) -> dg.AutomationCondition | None:
    condition = declaration.condition or ("on_cron" if declaration.cron else layer_policy.condition)
    cron = declaration.cron or settings.cycle.cron
    timezone = declaration.timezone or settings.cycle.timezone
    checks = (
        layer_policy.blocking_checks if declaration.blocking_checks is None else declaration.blocking_checks
    )
    if condition == "manual":
        return None
    if condition == "eager":
        retry = (settings.cycle.cron, settings.cycle.timezone) if layer_policy.retry_failed_checks else None
        return conditions.eager(blocking_checks=checks, retry_failed_checks=retry)
    if condition == "on_cron":
        return conditions.on_cron(cron, timezone, blocking_checks=checks)
    return conditions.on_cadence(cron, timezone)


def _freshness(
    spec: dg.AssetSpec, declaration: AutomationDeclaration, layer_policy: LayerPolicy
) -> dg.FreshnessPolicy | None:
    if declaration.freshness is False:
        return None
    if declaration.freshness is not None and declaration.freshness is not True:
        return declaration.freshness.policy()
    if spec.freshness_policy is not None:
        return spec.freshness_policy
    if layer_policy.freshness is None or spec.group_name in layer_policy.freshness_skip_groups:
        return None
    return layer_policy.freshness.policy()
