"""Test-only code location for the end-to-end automation test (tests/automation/test_e2e_daemon.py).

A tiny platform-shaped chain, automated by the platform's own component and policy:
    <landing_dir>/drops/*.csv ─(landing sensor)─► raw/landing/drops ─(eager)─► finance/drop_totals
        ─(eager after blocking checks)─► salesforce/drop_sync
plus marketing/short_lived_mart, whose 1-minute freshness window lets the test watch a freshness alert.
Sensor intervals are a few seconds so the test stays short.
"""

import dagster as dg
import yaml

from platform_assets import environment
from platform_assets.automation import apply_platform_policy
from platform_assets.automation.settings import CycleSettings, PolicySettings
from platform_assets.components.automation import (
    AlertSettings,
    FileDropSensorSettings,
    SensorSettings,
    build_automation_defs,
)


@dg.asset(key=["raw", "landing", "drops"], group_name="ingestion_landing", tags={"layer": "ingestion"})
def drops() -> dg.MaterializeResult:
    files = sorted((environment.current().landing_dir / "drops").glob("*.csv"))
    rows = sum(len(path.read_text().splitlines()) - 1 for path in files)
    return dg.MaterializeResult(metadata={"files": len(files), "rows": rows})


@dg.asset(
    key=["finance", "drop_totals"],
    group_name="finance",
    deps=[drops],
    tags={"layer": "transformation"},
    check_specs=[dg.AssetCheckSpec("has_rows", asset=["finance", "drop_totals"], blocking=True)],
)
def drop_totals() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="has_rows", passed=True)])


@dg.asset(
    key=["salesforce", "drop_sync"], group_name="activation", deps=[drop_totals], tags={"layer": "activation"}
)
def drop_sync() -> None:
    return None


@dg.asset(
    key=["marketing", "short_lived_mart"],
    group_name="marketing",
    tags={"layer": "transformation"},
    metadata={"platform/automation": {"condition": "manual", "freshness": {"fail_after": "1m"}}},
)
def short_lived_mart() -> None:
    return None


def _declared_alerts() -> dict:
    defs_yaml = environment.PROJECT_ROOT / "platform_assets" / "defs" / "automation" / "defs.yaml"
    return yaml.safe_load(defs_yaml.read_text())["attributes"]["alerts"]


def _automation() -> dg.Definitions:
    return build_automation_defs(
        # A cycle that never starts during a test (New Year's midnight): the hourly default fired at :00
        # whenever the test straddled the hour, and its ingestion run broke "each asset exactly once".
        PolicySettings(cycle=CycleSettings(cron="0 0 1 1 *")),
        SensorSettings(
            automation_interval_seconds=2,
            file_drops=[
                FileDropSensorSettings(
                    source="landing", folder="{landing_dir}", interval_seconds=2, settle_seconds=0.5
                )
            ],
            path_interval_seconds=2,
        ),
        # The platform's declared alert channels (the test sets PLATFORM_ALERT_SLACK_WEBHOOK_URL).
        AlertSettings.model_validate({**_declared_alerts(), "notify_on_success": False}),
        with_meltano_state_job=False,
    )


defs = apply_platform_policy(
    dg.Definitions.merge(
        dg.Definitions(assets=[drops, drop_totals, drop_sync, short_lived_mart]), _automation()
    )
)
