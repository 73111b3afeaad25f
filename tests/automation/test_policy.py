"""The policy's reading of declarations: defs.yaml, asset metadata from the other components, bad input."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from automation.platform_like import _DEFAULT_POLICY
from platform_assets.automation import apply_platform_policy
from platform_assets.automation.policy import POLICY_METADATA_KEY, policy_settings_from
from platform_assets.automation.settings import CADENCE_TAG, AutomationSettingsError, PolicySettings
from platform_assets.components.automation import AutomationComponent

DEFS_YAML = Path(__file__).resolve().parents[2] / "platform_assets" / "defs" / "automation" / "defs.yaml"


def _spec(key: list[str], layer: str, **metadata: object) -> dg.AssetSpec:
    return dg.AssetSpec(key, tags={"layer": layer}, metadata=metadata or None, group_name=key[0])


def _policy(*specs: dg.AssetSpec, settings: PolicySettings | None = None) -> dict[str, dg.AssetSpec]:
    defs = apply_platform_policy(dg.Definitions(assets=list(specs)), settings or PolicySettings())
    return {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}


def test_defs_yaml_policy_matches_what_the_timeline_tests() -> None:
    attributes = yaml.safe_load(DEFS_YAML.read_text())["attributes"]
    component = AutomationComponent.model_validate(attributes)
    assert component.policy == PolicySettings.model_validate(_DEFAULT_POLICY)


def test_policy_published_by_the_component_is_what_apply_platform_policy_reads() -> None:
    settings = PolicySettings.model_validate({"cycle": {"cron": "*/20 * * * *", "timezone": "Europe/Paris"}})
    defs = dg.Definitions(
        metadata={POLICY_METADATA_KEY: dg.MetadataValue.json(settings.model_dump(mode="json"))}
    )
    assert policy_settings_from(defs) == settings
    assert policy_settings_from(dg.Definitions()) == PolicySettings()


def test_source_cadence_from_the_meltano_component_metadata() -> None:
    specs = _policy(
        _spec(["raw", "salesforce", "account"], "ingestion", cadence=dg.MetadataValue.text("*/15 * * * *")),
        _spec(["raw", "landing", "invoices"], "ingestion", cadence=dg.MetadataValue.text("0 * * * *")),
        _spec(["raw", "landing", "signups"], "ingestion"),
    )
    assert specs["raw/salesforce/account"].tags[CADENCE_TAG] == "own"
    assert specs["raw/salesforce/account"].automation_condition.get_label() == "on_cadence(*/15 * * * *, UTC)"
    # A cadence equal to the cycle's is the cycle: the schedule starts it, no second condition.
    assert specs["raw/landing/invoices"].tags[CADENCE_TAG] == "cycle"
    assert specs["raw/landing/invoices"].automation_condition is None
    assert specs["raw/landing/signups"].tags[CADENCE_TAG] == "cycle"


def test_sync_yaml_automation_mapping_opts_out_or_overrides_freshness() -> None:
    specs = _policy(
        _spec(["hightouch", "a"], "activation", automation=dg.MetadataValue.json({"condition": "manual"})),
        _spec(["hightouch", "b"], "activation", automation={"freshness": False}),
        _spec(["finance", "fin_mrr"], "transformation", **{"platform/automation": {"cron": "0 3 * * *"}}),
    )
    assert specs["hightouch/a"].automation_condition is None
    assert specs["hightouch/b"].freshness_policy is None
    assert specs["hightouch/b"].automation_condition.get_label() == "eager_after_blocking_checks"
    assert specs["finance/fin_mrr"].automation_condition.get_label() == "on_cron(0 3 * * *, UTC)"


def test_bad_declaration_names_the_asset_the_file_and_the_key() -> None:
    bad = _spec(
        ["salesforce", "leads"],
        "activation",
        automation={"freshnes": {"fail_after": "30m"}},
        source_file="platform_assets/defs/activation/x.yaml",
    )
    with pytest.raises(AutomationSettingsError, match=r"salesforce/leads.*x\.yaml.*freshnes"):
        _policy(bad)
    with pytest.raises(AutomationSettingsError, match="not a duration"):
        _policy(
            _spec(["salesforce", "leads"], "activation", automation={"freshness": {"fail_after": "soon"}})
        )
    with pytest.raises(AutomationSettingsError, match="not a cron"):
        _policy(_spec(["raw", "x", "y"], "ingestion", cadence="every minute"))


def test_override_selection_is_checked_at_load() -> None:
    """A malformed selection fails naming the override; one that selects nothing is logged, not ignored."""
    from platform_assets.automation.settings import Override

    def settings(select: str) -> PolicySettings:
        return PolicySettings(overrides=[Override(select=select, automation={"condition": "manual"})])

    spec = _spec(["raw", "x", "y"], "ingestion")
    with pytest.raises(AutomationSettingsError, match=r"policy\.overrides\[0\]\.select.*key:raw/\(\("):
        _policy(spec, settings=settings("key:raw/(("))


def test_override_that_selects_nothing_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    from platform_assets.automation.settings import Override

    only = PolicySettings(overrides=[Override(select="key:typo/*", automation={"condition": "manual"})])
    with caplog.at_level("WARNING", logger="platform_assets.automation.policy"):
        _policy(_spec(["raw", "x", "y"], "ingestion"), settings=only)
    assert "policy.overrides[0].select ('key:typo/*') selects no asset" in caplog.text
