"""Branch deployments: in ci mode every warehouse schema is the branch's own, never a prod schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from platform_assets import environment
from platform_assets.integrations.meltano.runner import plugin_settings
from platform_assets.resources import dbt_resource
from platform_assets.warehouse import quote_identifier

# Every schema the platform writes: raw per source (Meltano), dbt's staging and domains, activation.
PLATFORM_SCHEMAS = [
    "raw_landing", "raw_app_db", "raw_salesforce", "staging", "finance", "marketing", "sales", "activation",
]  # fmt: skip


@pytest.fixture
def set_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("PLATFORM_ENV", "PLATFORM_BRANCH", "GITHUB_HEAD_REF"):
        monkeypatch.delenv(name, raising=False)
    environment.current.cache_clear()
    yield monkeypatch
    environment.current.cache_clear()


def ci_environment(monkeypatch: pytest.MonkeyPatch, **variables: str) -> environment.PlatformEnvironment:
    monkeypatch.setenv("PLATFORM_ENV", "ci")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    environment.current.cache_clear()
    return environment.current()


def test_ci_schemas_carry_the_branch_prefix(set_env: pytest.MonkeyPatch) -> None:
    env = ci_environment(set_env, PLATFORM_BRANCH="feature/Add-Leads")
    assert env.schema_prefix == "ci_feature_add_leads_"
    assert [env.schema(s) for s in PLATFORM_SCHEMAS] == [
        f"ci_feature_add_leads_{s}" for s in PLATFORM_SCHEMAS
    ]


def test_pull_request_branch_comes_from_github_head_ref_and_platform_branch_wins(
    set_env: pytest.MonkeyPatch,
) -> None:
    assert ci_environment(set_env, GITHUB_HEAD_REF="fix/arr-sync").schema("sales") == "ci_fix_arr_sync_sales"
    env = ci_environment(set_env, GITHUB_HEAD_REF="fix/arr-sync", PLATFORM_BRANCH="release-7")
    assert env.schema("sales") == "ci_release_7_sales"


@pytest.mark.parametrize(
    "branch", ["main", "prod", "", "---", "../staging", "RAW_LANDING", "Ünïcode/branch", "x" * 200]
)
def test_no_prod_schema_ever_appears_in_ci_mode(set_env: pytest.MonkeyPatch, branch: str) -> None:
    env = ci_environment(set_env, PLATFORM_BRANCH=branch)
    for schema in PLATFORM_SCHEMAS:
        ci_schema = env.schema(schema)
        assert ci_schema != schema and ci_schema.startswith("ci_") and ci_schema.endswith(f"_{schema}")
        quote_identifier(ci_schema)  # a valid plain identifier, whatever the branch is called


def test_dbt_and_meltano_write_to_the_branch_schemas_in_ci(set_env: pytest.MonkeyPatch) -> None:
    env = ci_environment(set_env, PLATFORM_BRANCH="feature/x")
    assert dbt_resource(environment.DBT_PROJECT_DIR, env).schema_prefix == "ci_feature_x_"
    assert dbt_resource(environment.DBT_PROJECT_DIR, env).target == "ci"
    settings = plugin_settings(env, "tap-landing", "target-snowflake", "landing")
    assert settings["TARGET_SNOWFLAKE_DEFAULT_TARGET_SCHEMA"] == "ci_feature_x_raw_landing"
    assert settings["PLATFORM_SCHEMA_PREFIX"] == "ci_feature_x_"


def test_prod_and_local_use_the_bare_schema_names(set_env: pytest.MonkeyPatch) -> None:
    for mode in ("prod", "local"):
        set_env.setenv("PLATFORM_ENV", mode)
        set_env.setenv("PLATFORM_BRANCH", "feature/x")  # ignored outside ci
        environment.current.cache_clear()
        assert environment.current().schema("finance") == "finance"
