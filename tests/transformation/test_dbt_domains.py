"""The dbt domains as Dagster assets: keys, groups, lineage, checks, per-domain runs and the models' rows."""

import json
import shutil
from decimal import Decimal

import dagster as dg
import pytest
from dagster_dbt import dbt_assets

from platform_assets import environment
from platform_assets.components.dbt_domains import (
    PREPARE_COMMAND,
    DbtDomainsComponent,
    DbtManifestError,
    PlatformDbtTranslator,
    domain_manifest,
    resolve_domains,
)

from .conftest import LANDING, build_component_defs, materialize_groups, query

DOMAINS = {"staging", "finance", "marketing", "sales"}
ACTIVATION_MODELS = {
    "act_salesforce_leads",
    "act_salesforce_opportunities",
    "act_salesforce_tasks",
    "act_salesforce_account_arr",
    "act_salesforce_support_accounts",
    "act_salesforce_campaigns",
    "act_salesforce_campaign_members",
}


def dbt_specs(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    return {spec.key: spec for assets_def in defs.assets or [] for spec in assets_def.specs}


# --- definitions (no dbt run) -----------------------------------------------------------------------------


def test_each_domain_is_its_own_assets_definition_selected_by_its_tag(transformation_defs):
    by_domain = {assets_def.op.name: assets_def for assets_def in transformation_defs.assets}
    assert set(by_domain) == {f"dbt_{domain}" for domain in DOMAINS}
    for domain in DOMAINS:
        groups = {spec.group_name for spec in by_domain[f"dbt_{domain}"].specs}
        assert groups == {domain}
        assert by_domain[f"dbt_{domain}"].op.tags["dagster_dbt/select"] == f"tag:{domain}"
        assert by_domain[f"dbt_{domain}"].op.pool == "warehouse"


def test_model_keys_are_schema_and_model_with_domain_groups_kinds_owners_and_layer_tag(transformation_defs):
    specs = dbt_specs(transformation_defs)
    fin_mrr = specs[dg.AssetKey(["finance", "fin_mrr"])]
    assert fin_mrr.group_name == "finance"
    assert fin_mrr.kinds == {"dbt", "duckdb"}
    assert fin_mrr.owners == ["finance-analytics@example.com"]
    assert fin_mrr.tags["layer"] == "transformation"
    assert fin_mrr.description.startswith("Monthly recurring revenue per workspace")
    for model in ACTIVATION_MODELS:
        spec = specs[dg.AssetKey(["activation", model])]
        assert spec.group_name == "sales"
        assert {"sales", "activation"} <= set(spec.tags)
    assert {key.path[0] for key in specs} == {"staging", "finance", "marketing", "sales", "activation"}
    assert dg.AssetKey(["marketing", "mkt_audience_trial_nurture"]) in specs
    assert dg.AssetKey(["sales", "sales_lead_scores"]) in specs
    assert all(spec.description for spec in specs.values())


def test_staging_models_depend_on_the_meltano_stream_assets(transformation_defs):
    specs = dbt_specs(transformation_defs)
    for stream in LANDING:
        deps = {dep.asset_key for dep in specs[dg.AssetKey(["staging", f"stg_landing__{stream}"])].deps}
        assert deps == {dg.AssetKey(["raw", "landing", stream])}
    salesforce_models = {
        "account": "accounts",
        "lead": "leads",
        "contact": "contacts",
        "opportunity": "opportunities",
        "task": "tasks",
        "user": "users",
    }
    for stream, model in salesforce_models.items():
        deps = {dep.asset_key for dep in specs[dg.AssetKey(["staging", f"stg_salesforce__{model}"])].deps}
        assert deps == {dg.AssetKey(["raw", "salesforce", stream])}


def test_run_first_domains_get_the_step_priority_and_unknown_names_fail_load(dbt_project_copy, platform_env):
    component = DbtDomainsComponent(project_dir=str(dbt_project_copy), run_first=["sales"])
    defs = component.build_defs(dg.ComponentTree.for_test().load_context)
    priorities = {a.op.name: a.op.tags.get("dagster/priority") for a in defs.assets}
    assert priorities == {"dbt_sales": "1", "dbt_staging": None, "dbt_finance": None, "dbt_marketing": None}

    typo = DbtDomainsComponent(project_dir=str(dbt_project_copy), run_first=["sale"])
    with pytest.raises(DbtManifestError, match="run_first names sale, which are not domains"):
        typo.build_defs(dg.ComponentTree.for_test().load_context)


def test_per_domain_manifests_give_the_same_graph_as_one_definition_over_the_whole_manifest(
    transformation_defs, dbt_project_copy
):
    """Each domain's definition sees only its slice of the manifest (for load speed); the keys, deps and
    checks must still be exactly what dagster-dbt derives from the full manifest."""
    manifest = json.loads((dbt_project_copy / "target" / "manifest.json").read_text())
    domains = resolve_domains(manifest, None, dbt_project_copy)
    translator = PlatformDbtTranslator({model: d for d in domains for model in d.model_ids}, manifest)

    @dbt_assets(manifest=manifest, exclude="tag:app_db", dagster_dbt_translator=translator)
    def whole_project(): ...

    def graph(assets_defs):
        specs = {spec.key: spec for assets_def in assets_defs for spec in assets_def.specs}
        checks = {spec.key for assets_def in assets_defs for spec in assets_def.check_specs}
        return {key: {dep.asset_key for dep in spec.deps} for key, spec in specs.items()}, checks

    assert graph(transformation_defs.assets) == graph([whole_project])
    by_name = {domain.name: domain for domain in domains}
    finance = domain_manifest(manifest, by_name["finance"])
    kept = set(finance["nodes"]) | set(finance["sources"])
    assert by_name["finance"].model_ids <= kept
    assert all(set(manifest["parent_map"][node]) <= kept for node in kept)  # everything upstream
    assert not by_name["marketing"].model_ids & set(finance["nodes"])


def test_activation_tests_are_blocking_checks_and_other_tests_are_not(transformation_defs):
    checks = [spec for assets_def in transformation_defs.assets for spec in assets_def.check_specs]
    activation = [spec for spec in checks if spec.asset_key.path[0] == "activation"]
    others = [spec for spec in checks if spec.asset_key.path[0] != "activation"]
    assert {spec.asset_key.path[1] for spec in activation} == ACTIVATION_MODELS
    assert all(spec.blocking for spec in activation)
    assert others and not any(spec.blocking for spec in others)
    names = {spec.name for spec in activation}
    assert {
        "unique_act_salesforce_leads_signup_id",
        "not_null_act_salesforce_tasks_Subject",
        "not_null_act_salesforce_opportunities_CloseDate",
    } <= names


def test_app_db_models_exist_only_where_the_app_database_is_configured(
    dbt_project_copy, platform_env, monkeypatch
):
    reconciliation = dg.AssetKey(["finance", "fin_app_subscription_reconciliation"])
    app_staging = dg.AssetKey(["staging", "stg_app_db__subscriptions"])
    without = dbt_specs(build_component_defs(dbt_project_copy))
    assert reconciliation not in without and app_staging not in without
    assert all(
        assets_def.op.tags.get("dagster_dbt/exclude") == "tag:app_db"
        for assets_def in build_component_defs(dbt_project_copy).assets
    )

    monkeypatch.setenv("PLATFORM_APP_DB_URL", "postgresql://app@127.0.0.1:5432/app")
    environment.current.cache_clear()
    try:
        with_app_db = dbt_specs(build_component_defs(dbt_project_copy))
    finally:
        monkeypatch.delenv("PLATFORM_APP_DB_URL")
        environment.current.cache_clear()
    assert {reconciliation, app_staging} <= set(with_app_db)
    assert {dep.asset_key for dep in with_app_db[app_staging].deps} == {
        dg.AssetKey(["raw", "app_db", "subscriptions"])
    }


def test_the_build_all_job_covers_every_dbt_asset(transformation_defs):
    job = transformation_defs.resolve_job_def("dbt_build_all")
    assert set(job.asset_layer.executable_asset_keys) == set(dbt_specs(transformation_defs))


def test_missing_manifest_fails_load_naming_the_prepare_command(tmp_path, platform_env):
    project_dir = tmp_path / "dbt_project"
    shutil.copytree(environment.DBT_PROJECT_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    with pytest.raises(DbtManifestError, match=r"manifest\.json does not exist") as error:
        build_component_defs(project_dir)
    assert PREPARE_COMMAND in str(error.value)


def test_a_manifest_prepared_for_another_warehouse_fails_load(dbt_project_copy, platform_env, monkeypatch):
    monkeypatch.setenv("PLATFORM_ENV", "ci")
    environment.current.cache_clear()
    try:
        expected = "prepared for duckdb, but PLATFORM_ENV=ci runs dbt on snowflake"
        with pytest.raises(DbtManifestError, match=expected):
            build_component_defs(dbt_project_copy)
    finally:
        monkeypatch.delenv("PLATFORM_ENV")
        environment.current.cache_clear()


def test_a_model_without_a_domain_tag_fails_load_naming_its_file(tmp_path, dbt_project_copy, platform_env):
    project_dir = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_copy, project_dir, ignore=shutil.ignore_patterns("logs"))
    manifest_path = project_dir / "target" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["nodes"]["model.platform.fin_mrr"]["tags"] = []
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DbtManifestError, match=r"models/marts/finance/fin_mrr\.sql: domain tags none"):
        build_component_defs(project_dir)


# --- runs on the sample company ---------------------------------------------------------------------------


@pytest.mark.integration
def test_materializing_group_finance_runs_only_finance_models(finance_run, transformation_defs):
    result, tables = finance_run
    finance_keys = {
        key for key, spec in dbt_specs(transformation_defs).items() if spec.group_name == "finance"
    }
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert (
        materialized
        == finance_keys
        == {dg.AssetKey(["finance", "fin_mrr"]), dg.AssetKey(["finance", "fin_revenue_by_account"])}
    )
    checked = {evaluation.asset_key for evaluation in result.get_asset_check_evaluations()}
    assert checked == finance_keys
    built_schemas = {table.split(".")[0] for table in tables}
    assert {"staging", "finance"} <= built_schemas
    assert not built_schemas & {"marketing", "sales", "activation"}


@pytest.mark.integration
def test_staging_keeps_the_latest_landing_row_and_the_latest_live_salesforce_record(warehouse):
    assert query(
        warehouse,
        "select monthly_amount from staging.stg_landing__subscriptions where subscription_id = 'sub_000001'",
    ) == [(Decimal("100.00"),)]
    assert query(warehouse, "select email from staging.stg_landing__users where user_id = 'usr_000006'") == [
        ("sam@beta.io",)
    ]
    accounts = query(
        warehouse, "select account_id, account_name from staging.stg_salesforce__accounts order by 1"
    )
    assert accounts == [("001000000000001", "Acme"), ("001000000000003", "Gamma")]


@pytest.mark.integration
def test_fin_mrr_counts_paying_subscriptions_per_month(warehouse):
    by_month = query(
        warehouse, "select cast(month_start as varchar), sum(mrr) from finance.fin_mrr group by 1 order by 1"
    )
    # Gamma 500 from Dec; Acme 100 from Jan; Delta 50 in Jan only (canceled 20 Feb); Beta is on a trial.
    assert by_month == [
        ("2025-12-01", Decimal("500.00")),
        ("2026-01-01", Decimal("650.00")),
        ("2026-02-01", Decimal("600.00")),
        ("2026-03-01", Decimal("600.00")),
    ]
    assert query(
        warehouse,
        "select arr, movement from finance.fin_mrr "
        "where workspace_id = 'ws_000001' and month_start = '2026-01-01'",
    ) == [(Decimal("1200.00"), "new")]


@pytest.mark.integration
def test_fin_revenue_by_account_reports_overdue_and_paid_amounts(warehouse):
    rows = query(
        warehouse,
        "select workspace_id, paid_amount, overdue_amount, current_arr, salesforce_account_id "
        "from finance.fin_revenue_by_account where workspace_id in ('ws_000001', 'ws_000003') "
        "order by 1",
    )
    assert rows == [
        ("ws_000001", Decimal("100.00"), Decimal("0.00"), Decimal("1200.00"), "001000000000001"),
        ("ws_000003", Decimal("0.00"), Decimal("500.00"), Decimal("6000.00"), "001000000000003"),
    ]


@pytest.mark.integration
def test_lead_activation_sends_new_signups_and_changed_platform_leads_only(warehouse):
    rows = query(
        warehouse,
        "select signup_id, LastName, Company, Active_Users__c from activation.act_salesforce_leads "
        "order by 1",
    )
    # sgn_000001 and sgn_000005: their workspaces have Accounts; sgn_000007: a Contact has the email;
    # sgn_000008: its Lead is up to date. sgn_000004 carries the sign-up's last name: the rep's edit in
    # Salesforce wins by the leads sync's conflict policy, not in the model.
    assert rows == [
        ("sgn_000004", "Trent", "Beta", 1),
        ("sgn_000006", "sam", "Beta", 1),
    ]
    columns = [
        row[0]
        for row in query(
            warehouse,
            "select column_name from information_schema.columns where "
            "table_name = 'act_salesforce_leads' order by ordinal_position",
        )
    ]
    assert columns == [
        "signup_id",
        "is_new_lead",
        "Signup_Id__c",
        "FirstName",
        "LastName",
        "Company",
        "Email",
        "Title",
        "LeadSource",
        "Workspace_Id__c",
        "Product_Usage_Score__c",
        "Active_Users__c",
        "Last_Active_At__c",
    ]


@pytest.mark.integration
def test_opportunities_tasks_and_arr_cover_only_what_salesforce_lacks(warehouse):
    # Acme (US, AMER) goes to AMER's first account manager: Alice joined before Bob; Carl is inactive, Dee
    # in another team.
    assert query(
        warehouse,
        "select workspace_id, AccountId, cast(CloseDate as varchar), Amount, OwnerId "
        "from activation.act_salesforce_opportunities",
    ) == [("ws_000001", "001000000000001", "2027-01-10", Decimal("1200.00"), "005000000000001")]
    assert query(
        warehouse, "select salesforce_user_id, territory from sales.sales_account_managers order by 1"
    ) == [
        ("005000000000001", "AMER"),
        ("005000000000002", "AMER"),
    ]
    # The past-due task for inv_000002 already exists in Salesforce; the usage drop at Gamma is new, and so
    # is the follow-up of Acme's new renewal, for its owner.
    assert query(
        warehouse,
        "select Platform_Key__c, WhatId, OwnerId, Status from activation.act_salesforce_tasks order by 1",
    ) == [
        ("renewal_follow_up:ws_000001", "001000000000001", "005000000000001", "Not Started"),
        ("usage_drop:ws_000003:2026-03-15", "001000000000003", "005000000000001", "Not Started"),
    ]
    assert query(
        warehouse, "select workspace_id, ARR__c, Plan__c from activation.act_salesforce_account_arr"
    ) == [("ws_000001", Decimal("1200.00"), "team")]


@pytest.mark.integration
def test_marketing_audiences_and_attribution(warehouse):
    assert query(warehouse, "select email from marketing.mkt_audience_trial_nurture order by 1") == [
        ("sam@beta.io",),
        ("trial@beta.io",),
    ]
    assert query(
        warehouse, "select workspace_id, expansion_reason from marketing.mkt_audience_expansion_accounts"
    ) == [("ws_000001", "seat_limit")]
    assert query(
        warehouse,
        "select campaign_id, spend, signups, converted_workspaces, attributed_mrr "
        "from marketing.mkt_campaign_attribution order by 1",
    ) == [
        ("cmp_000001", Decimal("150.00"), 2, 1, Decimal("100.00")),
        ("cmp_000002", Decimal("200.00"), 1, 1, Decimal("500.00")),
        ("cmp_000003", Decimal("0.00"), 0, 0, Decimal("0.00")),
    ]


@pytest.mark.integration
def test_campaign_records_audience_and_notifications(warehouse):
    """What the publish_campaigns workflow sends: every campaign as a Salesforce Campaign; the members of
    the campaigns not ended (open Leads, and Contacts for an email campaign); who to notify of them."""
    assert query(
        warehouse,
        "select Campaign_Id__c, Type, cast(StartDate as varchar) from activation.act_salesforce_campaigns "
        "order by 1",
    ) == [
        ("cmp_000001", "Email", "2026-01-01"),
        ("cmp_000002", "Advertisement", "2025-11-01"),
        ("cmp_000003", "Email", "2026-01-01"),
    ]
    assert query(
        warehouse,
        "select member_key, campaign_ref, LeadId, ContactId from activation.act_salesforce_campaign_members "
        "order by 1",
    ) == [
        ("cmp_000003:003000000000007", "cmp_000003", None, "003000000000007"),
        ("cmp_000003:00Q000000000004", "cmp_000003", "00Q000000000004", None),
        ("cmp_000003:00Q000000000008", "cmp_000003", "00Q000000000008", None),
    ]
    assert query(
        warehouse,
        "select notification_key, first_name from marketing.mkt_audience_campaign_notifications order by 1",
    ) == [
        ("cmp_000003:dana@epsilon.io", "Dana"),
        ("cmp_000003:eli@epsilon.io", "Eli"),
        ("cmp_000003:trial@beta.io", "Tia"),
    ]


@pytest.mark.integration
def test_a_dbt_compile_error_fails_the_domain_asset_with_dbts_message(
    tmp_path, dbt_project_copy, staging_built
):
    project_dir = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_copy, project_dir, ignore=shutil.ignore_patterns("logs"))
    model = project_dir / "models" / "marts" / "finance" / "fin_mrr.sql"
    model.write_text(model.read_text() + "\n{{ ref('no_such_model') }}\n")
    result = materialize_groups(build_component_defs(project_dir), "finance", raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    message = failure.to_string()
    assert "dbt_finance" in result.get_step_failure_events()[0].step_key
    assert "fin_mrr" in message and "no_such_model" in message and "was not found" in message
