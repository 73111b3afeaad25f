"""The automation policy's settings (defs/automation/defs.yaml) and the per-asset `automation` declaration.

Two shapes live here:
- `PolicySettings`: platform-wide defaults per layer, the cycle cron and selection-based overrides. Written in
  defs/automation/defs.yaml under `policy:`; every field has a default so an empty file still works.
- `AutomationDeclaration`: what one asset declares about itself (a sync YAML's `automation:` mapping, a dbt
  model's `meta.platform.automation`, a source's `cadence`). It reaches the policy through asset metadata.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

LAYERS = ("ingestion", "transformation", "activation")
LAYER_TAG = "layer"
CADENCE_TAG = "platform/cadence"
"""Tag the policy puts on ingestion assets: `cycle` (started by the cycle schedule) or `own` (own cron)."""

# Metadata keys an asset may carry its declaration under; the first one present wins.
DECLARATION_METADATA_KEYS = ("platform/automation", "automation")
CADENCE_METADATA_KEYS = ("platform/cadence", "cadence")

_DURATION_PART = re.compile(r"(\d+)\s*(d|h|m|s)")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}

Condition = Literal["eager", "on_cron", "on_cadence", "manual"]


class AutomationSettingsError(ValueError):
    """A declaration or the policy settings are invalid; the message names where and how to fix it."""


def parse_duration(text: str | int) -> timedelta:
    """'30m', '2h', '1h30m', '1d', '90s' (or a number of minutes) -> timedelta."""
    if isinstance(text, int):
        return timedelta(minutes=text)
    cleaned = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise AutomationSettingsError(f"{text!r} is not a duration; write e.g. '30m', '2h', '1h30m' or '1d'.")
    return sum((timedelta(**{_UNITS[unit]: int(number)}) for number, unit in parts), timedelta())


def _check_cron(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        dg.AutomationCondition.cron_tick_passed(value)  # Dagster's own cron validation
    except Exception:
        raise ValueError(f"{value!r} is not a cron schedule (e.g. '*/15 * * * *' or '0 3 * * *')") from None
    return value


class Freshness(BaseModel):
    """`FreshnessPolicy.time_window`: FAIL when the last update is older than `fail_after`."""

    model_config = ConfigDict(extra="forbid")
    fail_after: str | int = Field(description="e.g. '30m', '2h': older than this is a freshness failure.")
    warn_after: str | int | None = Field(
        default=None, description="e.g. '15m': older than this is a warning."
    )

    @field_validator("fail_after", "warn_after")
    @classmethod
    def _duration(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            try:
                parse_duration(value)
            except AutomationSettingsError as error:
                raise ValueError(str(error)) from None
        return value

    def policy(self) -> dg.FreshnessPolicy:
        fail = parse_duration(self.fail_after)
        warn = parse_duration(self.warn_after) if self.warn_after is not None else None
        if fail < timedelta(minutes=1) or (warn is not None and not timedelta(minutes=1) <= warn < fail):
            raise AutomationSettingsError(
                f"freshness fail_after={self.fail_after!r} warn_after={self.warn_after!r}: Dagster needs "
                "fail_after >= 1m and 1m <= warn_after < fail_after."
            )
        return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


class AutomationDeclaration(BaseModel):
    """What one asset declares. Everything is optional: absent fields take the layer's default."""

    model_config = ConfigDict(extra="forbid")
    condition: Condition | None = Field(
        default=None,
        description="eager: run when any input's data (or the own code version) changed (OR). on_cron: "
        "once per `cron` tick after all dependencies updated since the tick (AND). on_cadence: on every "
        "`cron` tick (sources). manual: no automation.",
    )
    cron: str | None = Field(
        default=None, description="Cron for on_cron / on_cadence (the cycle's by default)."
    )
    cadence: str | None = Field(default=None, description="A source's own cadence: a cron, or 'cycle'.")
    timezone: str | None = None
    freshness: Freshness | bool | None = Field(
        default=None, description="A time window overriding the layer default; `false` turns freshness off."
    )
    blocking_checks: bool | None = Field(
        default=None, description="Wait until the dependencies' blocking checks passed (syncs: true)."
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return _check_cron(value)

    @field_validator("cadence")
    @classmethod
    def _cadence(cls, value: str | None) -> str | None:
        return value if value in (None, "cycle") else _check_cron(value)


class LayerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    condition: Condition
    freshness: Freshness | None = None
    freshness_skip_groups: list[str] = Field(
        default_factory=list, description="Groups of this layer without a default freshness policy."
    )
    blocking_checks: bool = False
    retry_failed_checks: bool = Field(
        default=False,
        description="Also run once per cycle while one of the asset's own checks failed (a sync's rejected "
        "records are sent again), even when its inputs did not change.",
    )


class Override(BaseModel):
    """Declarations applied to every asset an asset-selection string selects (e.g. `key:salesforce/*`)."""

    model_config = ConfigDict(extra="forbid")
    select: str
    automation: AutomationDeclaration


class CycleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str = "0 * * * *"
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value) or value


def _default_layers() -> dict[str, LayerPolicy]:
    return {
        "ingestion": LayerPolicy(condition="on_cadence"),
        "transformation": LayerPolicy(
            condition="eager",
            freshness=Freshness(fail_after="3h", warn_after="2h"),
            freshness_skip_groups=["staging"],
        ),
        "activation": LayerPolicy(
            condition="eager",
            freshness=Freshness(fail_after="3h", warn_after="2h"),
            blocking_checks=True,
            retry_failed_checks=True,
        ),
    }


class PolicySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cycle: CycleSettings = Field(default_factory=CycleSettings)
    layers: dict[str, LayerPolicy] = Field(default_factory=_default_layers)
    overrides: list[Override] = Field(default_factory=list)

    @field_validator("layers")
    @classmethod
    def _known_layers(cls, value: dict[str, LayerPolicy]) -> dict[str, LayerPolicy]:
        unknown = sorted(set(value) - set(LAYERS))
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}; layers are {list(LAYERS)}")
        return {**_default_layers(), **value}


def parse_declaration(raw: Any, where: str) -> AutomationDeclaration:
    """Validate one asset's declaration; `where` names the asset and the file it came from."""
    if raw is None:
        return AutomationDeclaration()
    if not isinstance(raw, dict):
        raise AutomationSettingsError(f"{where}: `automation` must be a mapping, got {raw!r}.")
    try:
        return AutomationDeclaration.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'automation'}: {e['msg']}" for e in error.errors()
        )
        raise AutomationSettingsError(
            f"{where}: invalid `automation` declaration ({problems}). Allowed keys: "
            f"{', '.join(AutomationDeclaration.model_fields)}; see docs/automation.md."
        ) from None
