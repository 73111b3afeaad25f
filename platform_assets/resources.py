"""Every resource the platform uses, built in one place per environment.

Local: the DuckDB file and the sandboxes on loopback with their fixed development credentials.
ci/prod: Snowflake and the real SaaS APIs, with every secret behind `dg.EnvVar` (resolved when a run
uses it, never logged or stored in the definitions).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from platform_assets import environment
from platform_assets.environment import PlatformEnvironment
from platform_assets.integrations.dbt.resource import PlatformDbtCliResource, dbt_executable
from platform_assets.integrations.hightouch.resource import HightouchResource
from platform_assets.integrations.salesforce.orgs import load_orgs
from platform_assets.integrations.salesforce.resource import SalesforceResource
from platform_assets.warehouse import DuckDBWarehouse, SnowflakeWarehouse, Warehouse

DBT_TARGET_BY_MODE = {
    environment.Mode.LOCAL: "local",
    environment.Mode.CI: "ci",
    environment.Mode.PROD: "prod",
}


def warehouse_resource(env: PlatformEnvironment | None = None) -> Warehouse:
    """The `warehouse`: DuckDB locally, Snowflake (dagster-snowflake) in ci/prod."""
    env = env or environment.current()
    if env.is_local:
        return DuckDBWarehouse(path=str(env.duckdb_path))
    return SnowflakeWarehouse(
        account=dg.EnvVar("SNOWFLAKE_ACCOUNT"),
        user=dg.EnvVar("SNOWFLAKE_USER"),
        password=dg.EnvVar("SNOWFLAKE_PASSWORD"),
        role=dg.EnvVar("SNOWFLAKE_ROLE"),
        warehouse=dg.EnvVar("SNOWFLAKE_WAREHOUSE"),
        database=dg.EnvVar("SNOWFLAKE_DATABASE"),
    )


def dbt_resource(project_dir: Path, env: PlatformEnvironment | None = None) -> PlatformDbtCliResource:
    """The `dbt` CLI with this environment's profile target, DuckDB path and schema prefix."""
    env = env or environment.current()
    return PlatformDbtCliResource(
        project_dir=os.fspath(project_dir),
        dbt_executable=dbt_executable(),
        profiles_dir=os.fspath(project_dir),
        target=DBT_TARGET_BY_MODE[env.mode],
        duckdb_path=os.fspath(env.duckdb_path) if env.is_local else None,
        schema_prefix=env.schema_prefix,
    )


def salesforce_resource(env: PlatformEnvironment | None = None, org: str | None = None) -> SalesforceResource:
    """The resource of an org of defs/activation/salesforce/orgs.yaml (default: the default org). Local: its
    sandbox with the constant client. ci/prod: its credential variables (client credentials or JWT)."""
    return load_orgs().get(org, where="salesforce_resource()").resource(env or environment.current())


def hightouch_resource(env: PlatformEnvironment | None = None, **overrides: Any) -> HightouchResource:
    """Local: the sandbox and its fixed key. ci/prod: HIGHTOUCH_API_KEY through dg.EnvVar."""
    env = env or environment.current()
    base_url = env.hightouch_api_base_url
    if env.is_local:
        settings: dict[str, Any] = {
            "api_key": environment.SANDBOX_HIGHTOUCH_API_KEY,
            "base_url": base_url,
            "app_url": base_url.rstrip("/").removesuffix("/api/v1"),
        }
    else:
        settings = {
            "api_key": dg.EnvVar("HIGHTOUCH_API_KEY"),
            "base_url": base_url,
            "app_url": os.environ.get("HIGHTOUCH_APP_URL") or None,
        }
    return HightouchResource(**{**settings, **overrides})
