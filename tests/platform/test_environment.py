from __future__ import annotations

import pytest

from platform_assets import environment
from platform_assets.resources import warehouse_resource
from platform_assets.warehouse import DuckDBWarehouse, quote_identifier


def test_local_is_the_default_and_keeps_state_under_the_local_dir(local_platform):
    assert local_platform.mode is environment.Mode.LOCAL
    assert local_platform.duckdb_path == local_platform.local_dir / "warehouse.duckdb"
    assert local_platform.landing_dir == local_platform.local_dir / "landing"
    assert local_platform.schema("finance") == "finance"
    assert isinstance(warehouse_resource(local_platform), DuckDBWarehouse)


def test_the_landing_url_selects_a_bucket_and_the_s3_endpoint_follows_the_mode(local_platform, monkeypatch):
    monkeypatch.delenv("S3_SANDBOX_PORT", raising=False)
    assert local_platform.landing_url == str(local_platform.landing_dir), "the landing folder by default"
    assert local_platform.s3_endpoint_url == f"http://127.0.0.1:{environment.DEFAULT_S3_SANDBOX_PORT}"
    monkeypatch.setenv("PLATFORM_LANDING_URL", "s3://acme-drops/landing")
    monkeypatch.setenv("S3_SANDBOX_PORT", "18794")
    environment.current.cache_clear()
    local = environment.current()
    assert (local.landing_url, local.s3_endpoint_url) == ("s3://acme-drops/landing", "http://127.0.0.1:18794")
    monkeypatch.setenv("PLATFORM_ENV", "prod")
    environment.current.cache_clear()
    assert environment.current().s3_endpoint_url is None, "AWS itself in prod"
    monkeypatch.setenv("PLATFORM_S3_ENDPOINT_URL", "https://minio.internal:9000")
    environment.current.cache_clear()
    assert environment.current().s3_endpoint_url == "https://minio.internal:9000"


def test_prod_lists_every_missing_setting_at_once(local_platform, monkeypatch):
    for variables in environment.REQUIRED_SETTINGS.values():
        for variable in variables:
            monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PLATFORM_ENV", "prod")
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "acme")
    environment.current.cache_clear()
    with pytest.raises(environment.MissingSettingsError) as raised:
        environment.current().validate()
    message = str(raised.value)
    assert "SNOWFLAKE_ACCOUNT" not in message
    for variable in ("SNOWFLAKE_USER", "SNOWFLAKE_DATABASE", "SALESFORCE_CLIENT_SECRET", "HIGHTOUCH_API_KEY"):
        assert variable in message


def test_unknown_environment_name_is_refused_with_the_choices(local_platform, monkeypatch):
    monkeypatch.setenv("PLATFORM_ENV", "staging")
    environment.current.cache_clear()
    with pytest.raises(ValueError, match="local, ci, prod"):
        environment.current()


def test_ci_prefixes_schemas_with_the_branch(local_platform, monkeypatch):
    monkeypatch.setenv("PLATFORM_ENV", "ci")
    monkeypatch.setenv("PLATFORM_BRANCH", "feature/Lead-Scoring v2")
    environment.current.cache_clear()
    assert environment.current().schema("sales") == "ci_feature_lead_scoring_v2_sales"


@pytest.mark.parametrize("name", ["orders; drop table x", "a.b", "", "1abc", 'x"y'])
def test_identifiers_from_configuration_must_be_plain_names(name):
    with pytest.raises(ValueError, match="not a valid warehouse identifier"):
        quote_identifier(name)


def test_duckdb_session_runs_qmark_sql(local_platform):
    warehouse = warehouse_resource(local_platform)
    with warehouse.session() as session:
        session.execute("create table t (k varchar, v integer)")
        session.executemany("insert into t values (?, ?)", [("a", 1), ("b", 2)])
        assert session.fetchall("select k from t where v > ? order by k", [0]) == [("a",), ("b",)]
        assert session.fetchone("select count(*) from t") == (2,)


def test_local_sandboxes_default_to_distinct_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sandbox `tasks.py` may start at once (each org's, Hightouch, Pub/Sub, S3) has its own port."""
    from platform_assets.integrations.salesforce.orgs import load_orgs

    for org in load_orgs():
        if org.decl.sandbox_port_env:
            monkeypatch.delenv(org.decl.sandbox_port_env, raising=False)
    ports = [org.local_sandbox_port for org in load_orgs()] + [
        environment.DEFAULT_HIGHTOUCH_SANDBOX_PORT,
        environment.DEFAULT_SALESFORCE_SANDBOX_PUBSUB_PORT,
        environment.DEFAULT_S3_SANDBOX_PORT,
    ]
    assert len(ports) == len(set(ports)), f"two sandboxes default to one port: {sorted(ports)}"
