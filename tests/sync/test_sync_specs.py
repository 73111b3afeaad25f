"""Sync YAML documents: the repo's syncs load into assets, and every mistake names the file, key and fix."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from platform_assets import dbt_manifest, environment
from platform_assets.components.salesforce_syncs import SalesforceSyncsComponent, sync_pool
from platform_assets.dbt_manifest import DbtManifest
from platform_assets.integrations.salesforce.resource import SalesforceResource
from platform_assets.integrations.salesforce.sync_spec import SyncConfigError, load_sync_specs
from platform_assets.resources import salesforce_resource

REPO_SYNCS = environment.PROJECT_ROOT / "platform_assets" / "defs" / "activation" / "salesforce" / "syncs"

VALID = """\
name: {name}
model: act_salesforce_leads
object: Lead
mode: upsert
external_id_field: Signup_Id__c
primary_key: signup_id
mapping:
  Signup_Id__c: Signup_Id__c
  LastName: LastName
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def manifest_of(*models: str) -> DbtManifest:
    nodes = {
        f"model.p.{name}": {"resource_type": "model", "name": name, "schema": "activation"} for name in models
    }
    return DbtManifest(Path("manifest.json"), {"nodes": nodes})


def load_error(folder: Path, models: set[str] | None = None) -> str:
    with pytest.raises(SyncConfigError) as error:
        load_sync_specs(folder, manifest_of(*(models or {"act_salesforce_leads"})))
    return str(error.value)


def specs_by_key(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    return {spec.key: spec for assets in defs.assets for spec in assets.specs}


def test_repo_syncs_become_salesforce_assets_depending_on_activation_models(tmp_path: Path, local_platform):
    component = SalesforceSyncsComponent(syncs_dir=str(REPO_SYNCS))
    defs = dg.build_defs_for_component(component)
    specs = specs_by_key(defs)

    expected = {
        "leads": "act_salesforce_leads",
        "opportunities": "act_salesforce_opportunities",
        "tasks": "act_salesforce_tasks",
        "account_arr": "act_salesforce_account_arr",
        "support_accounts": "act_salesforce_support_accounts",
    }
    assert set(specs) == {dg.AssetKey(["salesforce", name]) for name in expected}
    for name, model in expected.items():
        spec = specs[dg.AssetKey(["salesforce", name])]
        assert {dep.asset_key for dep in spec.deps} == {dg.AssetKey(["activation", model])}
        assert spec.group_name == "activation"
        assert spec.kinds == {"salesforce"}
        assert spec.tags["layer"] == "activation"
    assert {assets.node_def.pool for assets in defs.assets} == {"warehouse"}
    checks = {key.asset_key.path[-1]: set() for assets in defs.assets for key in assets.check_keys}
    for key in (key for assets in defs.assets for key in assets.check_keys):
        checks[key.asset_key.path[-1]].add(key.name)
    # Syncs declaring conflict policies also report conflicts (docs/salesforce-syncs.md#conflict-policies).
    assert checks == {
        "leads": {"no_failed_records", "no_conflicts"},
        "account_arr": {"no_failed_records", "no_conflicts"},
        "opportunities": {"no_failed_records"},
        "tasks": {"no_failed_records"},
        "support_accounts": {"no_failed_records"},
    }
    assert isinstance(defs.resources["salesforce"], SalesforceResource)
    assert isinstance(defs.resources["salesforce_support"], SalesforceResource)  # the support org's
    assert specs[dg.AssetKey(["salesforce", "support_accounts"])].metadata["salesforce_org"] == "support"
    assert specs[dg.AssetKey(["salesforce", "leads"])].metadata["salesforce_org"] == "sales"


def test_repo_defs_yaml_loads_through_the_dg_project(local_platform):
    _, defs = dg.get_component_defs_within_project(
        project_root=environment.PROJECT_ROOT, component_path="activation/salesforce"
    )
    keys = set(specs_by_key(defs))
    assert dg.AssetKey(["salesforce", "leads"]) in keys


def test_repo_syncs_name_models_that_exist_in_the_dbt_project():
    specs = load_sync_specs(REPO_SYNCS, dbt_manifest.read())
    assert {spec.mode for spec in specs} == {"upsert", "update"}


def test_syncs_use_the_salesforce_api_pool_where_the_warehouse_takes_many_writers(
    monkeypatch, local_platform
):
    assert sync_pool(local_platform) == "warehouse"
    monkeypatch.setenv("PLATFORM_ENV", "prod")
    environment.current.cache_clear()
    assert sync_pool(environment.current()) == "salesforce_api"


def test_local_resource_points_at_the_sandbox_and_prod_reads_env_vars(monkeypatch, local_platform):
    monkeypatch.setenv("SALESFORCE_SANDBOX_PORT", "18791")
    environment.current.cache_clear()
    local = salesforce_resource(environment.current())
    assert local.login_url == "http://127.0.0.1:18791"
    assert local.client_id == environment.SANDBOX_SALESFORCE_CLIENT_ID

    monkeypatch.setenv("PLATFORM_ENV", "prod")
    monkeypatch.setenv("SALESFORCE_LOGIN_URL", "https://login.example.test")
    monkeypatch.setenv("SALESFORCE_CLIENT_ID", "prod-client")
    monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", "prod-secret")
    environment.current.cache_clear()
    prod = salesforce_resource(environment.current()).process_config_and_initialize()
    credentials = prod.get_client().credentials
    assert (credentials.login_url, credentials.client_secret) == ("https://login.example.test", "prod-secret")
    assert "prod-secret" not in repr(credentials)


def test_automation_mapping_is_passed_through_untouched(tmp_path: Path, local_platform):
    automation = {"condition": "on_cron", "cron": "0 * * * *", "freshness": {"warn": "2h"}}
    write(tmp_path, "leads", VALID.format(name="leads") + f"automation: {json.dumps(automation)}\n")
    component = SalesforceSyncsComponent(syncs_dir=str(tmp_path))

    (spec,) = specs_by_key(dg.build_defs_for_component(component)).values()

    assert spec.metadata["platform/automation"].data == automation


def test_missing_key_names_file_key_and_fix(tmp_path: Path):
    path = write(tmp_path, "leads", VALID.format(name="leads").replace("primary_key: signup_id\n", ""))
    message = load_error(tmp_path)
    assert str(path) in message and "'primary_key'" in message and "is missing" in message
    assert "Fix:" in message


def test_unknown_mode_names_the_modes(tmp_path: Path):
    write(tmp_path, "leads", VALID.format(name="leads").replace("mode: upsert", "mode: merge"))
    message = load_error(tmp_path)
    assert "'mode'" in message and "upsert, update, insert, mirror" in message


def test_mapping_without_the_external_id_column_fails(tmp_path: Path):
    write(tmp_path, "leads", VALID.format(name="leads").replace("  Signup_Id__c: Signup_Id__c\n", ""))
    message = load_error(tmp_path)
    assert "leads.yaml: key 'mapping'" in message and "Signup_Id__c" in message


def test_update_without_an_id_or_lookup_field_fails(tmp_path: Path):
    text = VALID.format(name="leads").replace("mode: upsert", "mode: update")
    write(tmp_path, "leads", text.replace("external_id_field: Signup_Id__c\n", ""))
    assert "key 'external_id_field'" in load_error(tmp_path)


def test_misspelt_key_fails_naming_it(tmp_path: Path):
    write(tmp_path, "leads", VALID.format(name="leads") + "batchsize: 10\n")
    message = load_error(tmp_path)
    assert "key 'batchsize'" in message and "not a sync setting" in message


def test_two_syncs_with_one_name_fail_naming_both_files(tmp_path: Path):
    write(tmp_path, "a", VALID.format(name="leads"))
    write(tmp_path, "b", VALID.format(name="leads"))
    message = load_error(tmp_path)
    assert "b.yaml: key 'name'" in message and "a.yaml" in message


def test_model_missing_from_the_manifest_fails_naming_file_and_key(tmp_path: Path):
    write(tmp_path, "leads", VALID.format(name="leads"))
    message = load_error(tmp_path, {"act_salesforce_tasks"})
    assert "leads.yaml: key 'model'" in message and "act_salesforce_leads" in message


def test_model_names_are_checked_against_a_prepared_manifest_at_load(tmp_path: Path, local_platform):
    write(tmp_path / "syncs", "leads", VALID.format(name="leads"))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {"nodes": {"model.p.other": {"resource_type": "model", "name": "other", "schema": "activation"}}}
        )
    )
    component = SalesforceSyncsComponent(syncs_dir=str(tmp_path / "syncs"), dbt_manifest_path=str(manifest))

    with pytest.raises(Exception, match=r"leads.yaml: key 'model'"):
        dg.build_defs_for_component(component)


def test_invalid_owner_and_batch_size_are_reported_together(tmp_path: Path):
    write(tmp_path, "leads", VALID.format(name="leads") + "batch_size: 0\n")
    write(tmp_path, "tasks", VALID.format(name="tasks") + "owners: [revops]\n")
    message = load_error(tmp_path)
    assert "leads.yaml: key 'batch_size'" in message
    assert "tasks.yaml: key 'owners'" in message


def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path):
    write(tmp_path, "leads", "- name: leads\n")
    assert "must be a YAML mapping" in load_error(tmp_path)


def test_blocking_tests_of_the_model_come_from_the_prepared_manifest(tmp_path: Path, local_platform):
    write(tmp_path / "syncs", "leads", VALID.format(name="leads"))
    model = {"resource_type": "model", "name": "act_salesforce_leads", "schema": "activation"}
    nodes = {
        "model.p.act_salesforce_leads": model,
        "test.p.unique_signup_id": {
            "resource_type": "test",
            "name": "unique_act_salesforce_leads_signup_id",
            "config": {"severity": "ERROR"},
            "attached_node": "model.p.act_salesforce_leads",
        },
        "test.p.warn_only": {
            "resource_type": "test",
            "name": "warn_only",
            "config": {"severity": "warn"},
            "attached_node": "model.p.act_salesforce_leads",
        },
    }
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"nodes": nodes}))
    component = SalesforceSyncsComponent(syncs_dir=str(tmp_path / "syncs"), dbt_manifest_path=str(manifest))

    (spec,) = specs_by_key(dg.build_defs_for_component(component)).values()

    assert spec.metadata["model_blocking_checks"].data == ["unique_act_salesforce_leads_signup_id"]
