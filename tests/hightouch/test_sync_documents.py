"""Sync YAML documents -> asset specs: keys, lineage, kinds, and errors that name the file and key."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from local_stack.sandbox.hightouch import DEFAULT_SYNCS_DIR
from platform_assets import dbt_manifest, environment
from platform_assets.components.hightouch_syncs import HightouchSyncsComponent
from platform_assets.dbt_manifest import DbtManifest
from platform_assets.integrations.hightouch.sync_spec import HightouchSyncConfigError, load_sync_declarations
from platform_assets.resources import hightouch_resource

VALID = """\
sync_slug: {slug}
model: {model}
primary_key: email
destination:
  label: Customer.io (onboarding)
  kind: customer_io
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def specs_by_key(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    return {spec.key: spec for assets in defs.assets for spec in assets.specs}


def test_repo_syncs_become_activation_assets_depending_on_marketing_audiences(tmp_path: Path, local_env):
    component = HightouchSyncsComponent(syncs_dir=str(DEFAULT_SYNCS_DIR))
    specs = specs_by_key(dg.build_defs_for_component(component))

    trial = specs[dg.AssetKey(["hightouch", "trial_nurture_braze"])]
    expansion = specs[dg.AssetKey(["hightouch", "expansion_accounts_google_ads"])]
    assert {dep.asset_key for dep in trial.deps} == {dg.AssetKey(["marketing", "mkt_audience_trial_nurture"])}
    assert {dep.asset_key for dep in expansion.deps} == {
        dg.AssetKey(["marketing", "mkt_audience_expansion_accounts"])
    }
    assert trial.kinds == {"hightouch", "braze"}
    assert expansion.kinds == {"hightouch", "google_ads"}
    for spec in (trial, expansion):
        assert spec.group_name == "activation"
        assert spec.tags.get("layer") == "activation"
        assert spec.owners == ["team:marketing"]


def test_repo_defs_yaml_loads_through_the_dg_project(local_env):
    tree = dg.ComponentTree.for_project(environment.PROJECT_ROOT / "platform_assets")
    defs = tree.build_defs(Path("activation/hightouch"))
    keys = {spec.key for assets in defs.assets for spec in assets.specs}
    assert {
        dg.AssetKey(["hightouch", "trial_nurture_braze"]),
        dg.AssetKey(["hightouch", "expansion_accounts_google_ads"]),
    } <= keys
    assert isinstance(defs.resources["hightouch"], dg.ConfigurableResource)


def test_sync_assets_run_in_the_warehouse_pool(tmp_path: Path, local_env):
    component = HightouchSyncsComponent(syncs_dir=str(DEFAULT_SYNCS_DIR))
    for assets in dg.build_defs_for_component(component).assets:
        assert {node.pool for node in [assets.node_def]} == {"warehouse"}


def test_model_names_resolve_to_schema_keys_by_explicit_schema_without_a_manifest(tmp_path: Path):
    folder = tmp_path / "syncs"
    write(
        folder,
        "a",
        VALID.format(slug="a", model="finance.fin_mrr")
        + "also_reads: [sales.pipeline_view, staging.stg_users]\n",
    )
    (sync,) = load_sync_declarations(folder)
    assert sync.model.asset_key == dg.AssetKey(["finance", "fin_mrr"])
    assert [ref.asset_key for ref in sync.also_reads] == [
        dg.AssetKey(["sales", "pipeline_view"]),
        dg.AssetKey(["staging", "stg_users"]),
    ]


def test_bare_model_names_resolve_through_the_manifest(tmp_path: Path):
    nodes = {
        f"model.p.{name}": {
            "resource_type": "model",
            "name": name,
            "schema": "x",
            "config": {"schema": schema},
        }
        for name, schema in (("fin_mrr", "finance"), ("pipeline_view", "sales"))
    }
    manifest = DbtManifest(tmp_path / "manifest.json", {"nodes": nodes})
    write(
        tmp_path / "syncs",
        "a",
        VALID.format(slug="a", model="fin_mrr") + "also_reads: [sales.pipeline_view]\n",
    )
    (sync,) = load_sync_declarations(tmp_path / "syncs", manifest)
    assert sync.model.asset_key == dg.AssetKey(["finance", "fin_mrr"])
    assert [ref.asset_key for ref in sync.also_reads] == [dg.AssetKey(["sales", "pipeline_view"])]


def test_manifest_gives_the_schema_of_a_model_without_a_known_prefix(tmp_path: Path):
    manifest_path = tmp_path / "manifest.json"
    node = {"resource_type": "model", "name": "trial_users", "config": {"schema": "marketing"}, "fqn": []}
    manifest_path.write_text(json.dumps({"nodes": {"model.platform.trial_users": node}}))
    manifest = dbt_manifest.read(manifest_path)
    write(tmp_path / "syncs", "a", VALID.format(slug="a", model="trial_users"))
    (sync,) = load_sync_declarations(tmp_path / "syncs", manifest)
    assert sync.model.asset_key == dg.AssetKey(["marketing", "trial_users"])


def test_model_missing_from_manifest_fails_naming_file_and_key(tmp_path: Path):
    manifest = DbtManifest(tmp_path / "manifest.json", {"nodes": {}})
    path = write(tmp_path / "syncs", "a", VALID.format(slug="a", model="mkt_audience_typo"))
    with pytest.raises(HightouchSyncConfigError) as error:
        load_sync_declarations(tmp_path / "syncs", manifest)
    assert str(path) in str(error.value)
    assert "key 'model'" in str(error.value)
    assert "mkt_audience_typo" in str(error.value)


def test_unresolvable_model_name_fails_naming_file_and_key(tmp_path: Path):
    path = write(tmp_path / "syncs", "a", VALID.format(slug="a", model="audience_without_prefix"))
    with pytest.raises(HightouchSyncConfigError, match="key 'model'") as error:
        load_sync_declarations(tmp_path / "syncs")
    assert str(path) in str(error.value)


def test_missing_destination_kind_fails_naming_file_and_key(tmp_path: Path):
    text = VALID.format(slug="a", model="marketing.mkt_x").replace("  kind: customer_io\n", "")
    path = write(tmp_path / "syncs", "a", text)
    with pytest.raises(HightouchSyncConfigError, match=r"key 'destination\.kind'") as error:
        load_sync_declarations(tmp_path / "syncs")
    assert str(path) in str(error.value)


def test_misspelt_key_fails_naming_it(tmp_path: Path):
    write(tmp_path / "syncs", "a", VALID.format(slug="a", model="marketing.mkt_x") + "on_warnings: fail\n")
    with pytest.raises(HightouchSyncConfigError, match="key 'on_warnings'"):
        load_sync_declarations(tmp_path / "syncs")


def test_sync_needs_an_id_or_slug(tmp_path: Path):
    write(
        tmp_path / "syncs", "a", VALID.format(slug="a", model="marketing.mkt_x").replace("sync_slug: a\n", "")
    )
    with pytest.raises(HightouchSyncConfigError, match="sync_id' or 'sync_slug"):
        load_sync_declarations(tmp_path / "syncs")


def test_non_numeric_sync_id_is_refused(tmp_path: Path):
    write(tmp_path / "syncs", "a", VALID.format(slug="a", model="marketing.mkt_x") + "sync_id: abc\n")
    with pytest.raises(HightouchSyncConfigError, match="key 'sync_id'"):
        load_sync_declarations(tmp_path / "syncs")


def test_two_syncs_with_one_slug_fail_naming_both_files(tmp_path: Path):
    first = write(tmp_path / "syncs", "a", VALID.format(slug="same", model="marketing.mkt_x"))
    second = write(tmp_path / "syncs", "b", VALID.format(slug="same", model="marketing.mkt_y"))
    with pytest.raises(HightouchSyncConfigError, match="key 'sync_slug'") as error:
        load_sync_declarations(tmp_path / "syncs")
    assert str(first) in str(error.value) and str(second) in str(error.value)


def test_file_with_two_documents_is_refused(tmp_path: Path):
    write(
        tmp_path / "syncs",
        "a",
        VALID.format(slug="a", model="marketing.mkt_x")
        + "---\n"
        + VALID.format(slug="b", model="marketing.mkt_y"),
    )
    with pytest.raises(HightouchSyncConfigError, match="one sync per file"):
        load_sync_declarations(tmp_path / "syncs")


def test_invalid_owner_fails_at_load_naming_the_file(tmp_path: Path, local_env):
    path = write(
        tmp_path / "syncs", "a", VALID.format(slug="a", model="marketing.mkt_x") + "owners: [marketing]\n"
    )
    component = HightouchSyncsComponent(
        syncs_dir=str(tmp_path / "syncs"), dbt_manifest_path=str(tmp_path / "x")
    )
    with pytest.raises(HightouchSyncConfigError, match="key 'owners'") as error:
        dg.build_defs_for_component(component)
    assert str(path) in str(error.value)


def test_automation_mapping_is_passed_through_untouched(tmp_path: Path, local_env):
    automation = {"cron": "0 6 * * *", "after": [["marketing", "mkt_x"]], "nested": {"on": True}}
    text = VALID.format(slug="a", model="marketing.mkt_x") + "automation: " + json.dumps(automation) + "\n"
    write(tmp_path / "syncs", "a", text)
    (sync,) = load_sync_declarations(tmp_path / "syncs")
    assert sync.declaration.automation == automation
    component = HightouchSyncsComponent(
        syncs_dir=str(tmp_path / "syncs"), dbt_manifest_path=str(tmp_path / "x")
    )
    (spec,) = specs_by_key(dg.build_defs_for_component(component)).values()
    assert spec.metadata["platform/automation"].value == automation


def test_local_resource_points_at_the_sandbox_with_the_sandbox_key(local_env, monkeypatch):
    monkeypatch.setenv("HIGHTOUCH_SANDBOX_PORT", "18999")
    resource = hightouch_resource()
    assert resource.base_url == "http://127.0.0.1:18999/api/v1"
    assert resource.api_key == environment.SANDBOX_HIGHTOUCH_API_KEY
    assert resource.run_url("7", "42") == "http://127.0.0.1:18999/syncs/7/runs/42"


def test_prod_resource_takes_its_key_from_the_environment_and_defaults_to_the_real_api(monkeypatch):
    monkeypatch.setenv("PLATFORM_ENV", "prod")
    monkeypatch.delenv("HIGHTOUCH_API_BASE_URL", raising=False)
    monkeypatch.delenv("HIGHTOUCH_APP_URL", raising=False)
    environment.current.cache_clear()
    try:
        resource = hightouch_resource()
        assert isinstance(resource.api_key, dg.EnvVar) and resource.api_key == "HIGHTOUCH_API_KEY"
        assert resource.base_url == "https://api.hightouch.com/api/v1"
        assert resource.run_url("7", "42") is None
        monkeypatch.setenv("HIGHTOUCH_API_BASE_URL", "https://eu.example.test/api/v1")
        assert hightouch_resource().base_url == "https://eu.example.test/api/v1"
    finally:
        environment.current.cache_clear()
