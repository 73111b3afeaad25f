"""Test-only assets shaped like the platform (keys, groups, tags, metadata declarations), so the automation
policy is tested on the real contract without Meltano or dbt.

    raw/landing/invoices ─► staging/stg_invoices ─► finance/fin_mrr ─┐
    raw/app_db/subscriptions ──────────────────► finance/fin_mrr     ├► activation/act_salesforce_account_arr
    raw/salesforce/account (own cadence: 15 min) ────────────────────┘   (blocking check)
        activation/act_salesforce_account_arr ─► salesforce/account_arr
    raw/salesforce/account ─► sales/sales_pipeline (expensive: meta cron 0 3 * * *)
    raw/landing/campaigns ─► staging/stg_campaigns ─► marketing/mkt_campaign_attribution
        marketing/mkt_campaign_attribution ─► hightouch/campaigns_ads
"""

from __future__ import annotations

import dagster as dg

from platform_assets.automation import apply_platform_policy
from platform_assets.automation.settings import PolicySettings
from platform_assets.components.automation import AlertSettings, SensorSettings, build_automation_defs

CHECK_OUTCOME = {"act_salesforce_account_arr": True}
"""Whether the blocking dbt-like test on the activation model passes; tests flip it."""


def _ingestion(source: str, stream: str, **metadata: object) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", source, stream],
        group_name=f"ingestion_{source}",
        kinds={"meltano", "duckdb"},
        tags={"layer": "ingestion"},
        metadata=metadata or None,
    )
    def _asset() -> None:
        return None

    return _asset


def _model(
    schema: str, name: str, group: str, deps: list[list[str]], **metadata: object
) -> dg.AssetsDefinition:
    @dg.asset(
        key=[schema, name],
        group_name=group,
        deps=[dg.AssetKey(dep) for dep in deps],
        kinds={"dbt", "duckdb"},
        tags={"layer": "transformation", group: ""},
        metadata=metadata or None,
    )
    def _asset() -> None:
        return None

    return _asset


def _sync(key: list[str], model: list[str], **metadata: object) -> dg.AssetsDefinition:
    @dg.asset(
        key=key,
        group_name="activation",
        deps=[dg.AssetKey(model)],
        tags={"layer": "activation"},
        kinds={key[0]},
        metadata=metadata or None,
    )
    def _asset() -> None:
        return None

    return _asset


@dg.asset(
    key=["activation", "act_salesforce_account_arr"],
    group_name="sales",
    deps=[dg.AssetKey(["finance", "fin_mrr"]), dg.AssetKey(["raw", "salesforce", "account"])],
    tags={"layer": "transformation", "sales": "", "activation": ""},
    check_specs=[
        dg.AssetCheckSpec(
            "not_null_workspace_id", asset=["activation", "act_salesforce_account_arr"], blocking=True
        )
    ],
)
def act_salesforce_account_arr() -> dg.MaterializeResult:
    passed = CHECK_OUTCOME["act_salesforce_account_arr"]
    return dg.MaterializeResult(
        check_results=[dg.AssetCheckResult(check_name="not_null_workspace_id", passed=passed)]
    )


def platform_assets() -> list[dg.AssetsDefinition]:
    return [
        _ingestion("landing", "invoices"),
        _ingestion("landing", "campaigns"),
        _ingestion("app_db", "subscriptions"),
        _ingestion("salesforce", "account", **{"platform/cadence": "*/15 * * * *"}),
        _model("staging", "stg_invoices", "staging", [["raw", "landing", "invoices"]]),
        _model("staging", "stg_campaigns", "staging", [["raw", "landing", "campaigns"]]),
        _model(
            "finance", "fin_mrr", "finance", [["staging", "stg_invoices"], ["raw", "app_db", "subscriptions"]]
        ),
        _model("marketing", "mkt_campaign_attribution", "marketing", [["staging", "stg_campaigns"]]),
        _model(
            "sales",
            "sales_pipeline",
            "sales",
            [["raw", "salesforce", "account"]],
            **{"platform/automation": {"cron": "0 3 * * *"}},
        ),
        act_salesforce_account_arr,
        _sync(["salesforce", "account_arr"], ["activation", "act_salesforce_account_arr"]),
        _sync(
            ["hightouch", "campaigns_ads"],
            ["marketing", "mkt_campaign_attribution"],
            automation=dg.MetadataValue.json({"freshness": {"fail_after": "6h"}}),
        ),
    ]


def platform_defs(policy: PolicySettings | None = None) -> dg.Definitions:
    """The test platform with the automation component's definitions, through the platform policy."""
    automation = build_automation_defs(
        policy or PolicySettings.model_validate(_DEFAULT_POLICY),
        SensorSettings(),
        AlertSettings(),
        with_meltano_state_job=False,
    )
    everything = dg.define_asset_job("everything", selection=dg.AssetSelection.all())
    return apply_platform_policy(
        dg.Definitions.merge(dg.Definitions(assets=platform_assets(), jobs=[everything]), automation)
    )


# The policy of platform_assets/defs/automation/defs.yaml (test_policy.py keeps the two equal).
_DEFAULT_POLICY = {
    "cycle": {"cron": "0 * * * *", "timezone": "UTC"},
    "overrides": [
        {
            "select": "key:salesforce/*",
            "automation": {"freshness": {"fail_after": "30m", "warn_after": "20m"}},
        }
    ],
}
