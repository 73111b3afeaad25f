"""Plugin settings declared in sources.yaml: templates over the platform environment, resolved at run time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from platform_assets import environment
from platform_assets.components.meltano import Source, SourcesConfigError, load_sources
from platform_assets.env_templates import TemplateError
from platform_assets.integrations.meltano.runner import plugin_settings
from platform_assets.integrations.salesforce.orgs import OrgCredentialsError

SOURCES = environment.PROJECT_ROOT / "platform_assets" / "defs" / "ingestion" / "sources.yaml"
LOADERS = {"local": "target-duckdb", "ci": "target-snowflake", "prod": "target-snowflake"}
ORGS = environment.PROJECT_ROOT / "platform_assets" / "defs" / "activation" / "salesforce" / "orgs.yaml"
SUPPORT_JWT = {  # the sample's support org in prod: JWT bearer
    f"SALESFORCE_SUPPORT_{name}": "x" for name in ("LOGIN_URL", "CLIENT_ID", "USERNAME", "PRIVATE_KEY")
}

FOO_PROJECT = {
    "plugins": {
        "extractors": [
            {
                "name": "tap-foo",
                "namespace": "tap_foo",
                "pip_url": "tap-foo",
                "executable": "tap-foo",
                "settings": [{"name": n} for n in ("api_url", "token", "region", "cache_dir")],
                "select": ["widgets.*"],
            }
        ],
        "loaders": [{"name": "target-bar", "namespace": "t", "pip_url": "t", "executable": "target-bar"}],
    }
}
FOO_SETTINGS = {
    "api_url": "https://{env:FOO_HOST}/v2",
    "token": "{env:FOO_TOKEN}",
    "region": {"prod": "eu", "default": "{env:FOO_REGION|us}"},
    "cache_dir": "{local_dir}/foo-cache",
}


def foo_sources(tmp_path: Path, settings: dict, env: environment.PlatformEnvironment) -> list[Source]:
    (tmp_path / "meltano").mkdir(exist_ok=True)
    (tmp_path / "meltano" / "meltano.yml").write_text(yaml.safe_dump(FOO_PROJECT))
    document = {
        "sources": {
            "foo": {
                "extractor": "tap-foo",
                "loader": "target-bar",
                "description": "A made-up API.",
                "settings": settings,
                "streams": {"widgets": {"description": "Widgets."}},
            }
        }
    }
    file = tmp_path / "sources.yaml"
    file.write_text(yaml.safe_dump(document))
    return load_sources(file, tmp_path / "meltano", LOADERS, env)


def sample(env: environment.PlatformEnvironment) -> dict[str, dict[str, str]]:
    """What each sample source's run gets: its declared settings, and its org's (orgs.yaml)."""
    return {
        source.name: plugin_settings(
            env, source.extractor, source.loader, source.name, source.settings, source.loader_settings
        )
        | source.org_env(env)
        for source in load_sources(SOURCES, environment.MELTANO_PROJECT_DIR, LOADERS, env)
    }


def use_mode(monkeypatch: pytest.MonkeyPatch, mode: str, **variables: str) -> environment.PlatformEnvironment:
    monkeypatch.setenv("PLATFORM_ENV", mode)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    environment.current.cache_clear()
    return environment.current()


def test_sample_sources_resolve_to_the_plugin_settings_locally(local_platform, monkeypatch) -> None:
    monkeypatch.setenv("PLATFORM_APP_DB_URL", "postgresql://app%40user:p%3Ass@db.example/app_prod")
    environment.current.cache_clear()
    settings = sample(environment.current())
    landing = settings["landing"]
    assert landing["TAP_LANDING_ROOT"] == str(local_platform.landing_dir)
    assert landing["TAP_LANDING_BATCH_DIR"] == str(local_platform.local_dir / "meltano" / "batches")
    assert landing["TARGET_DUCKDB_BULK_FILEPATH"] == str(local_platform.duckdb_path)
    assert landing["TARGET_DUCKDB_BULK_DEFAULT_TARGET_SCHEMA"] == "raw_landing"
    assert {k: v for k, v in settings["app_db"].items() if k.startswith("TAP_POSTGRES_")} == {
        "TAP_POSTGRES_HOST": "db.example",
        "TAP_POSTGRES_PORT": "5432",
        "TAP_POSTGRES_USER": "app@user",
        "TAP_POSTGRES_PASSWORD": "p:ss",
        "TAP_POSTGRES_DATABASE": "app_prod",
    }
    salesforce = settings["salesforce"]
    assert salesforce["TAP_SALESFORCE_BULK_CLIENT_ID"] == environment.SANDBOX_SALESFORCE_CLIENT_ID
    assert salesforce["TAP_SALESFORCE_BULK_CLIENT_SECRET"] == environment.SANDBOX_SALESFORCE_CLIENT_SECRET
    assert salesforce["TAP_SALESFORCE_BULK_LOGIN_URL"] == local_platform.salesforce_login_url
    assert "TAP_SALESFORCE_BULK_USERNAME" not in salesforce
    support = settings["salesforce_support"]  # the second org: its own sandbox
    assert support["TAP_SALESFORCE_BULK__SUPPORT_LOGIN_URL"] == "http://127.0.0.1:8795"
    assert support["TARGET_DUCKDB_DEFAULT_TARGET_SCHEMA"] == "raw_salesforce_support"


def test_sample_salesforce_in_prod_passes_only_the_credentials_that_are_set(local_platform, monkeypatch):
    monkeypatch.delenv("SALESFORCE_USERNAME", raising=False)
    env = use_mode(
        monkeypatch,
        "prod",
        SALESFORCE_LOGIN_URL="https://login.example",
        SALESFORCE_CLIENT_ID="cid",
        SALESFORCE_CLIENT_SECRET="secret",
        SALESFORCE_PRIVATE_KEY="key",
        **SUPPORT_JWT,
    )
    salesforce = sample(env)["salesforce"]
    assert {k: v for k, v in salesforce.items() if k.startswith("TAP_")} == {
        "TAP_SALESFORCE_BULK_LOGIN_URL": "https://login.example",
        "TAP_SALESFORCE_BULK_CLIENT_ID": "cid",
        "TAP_SALESFORCE_BULK_CLIENT_SECRET": "secret",  # auto: no username, so client credentials
        "TAP_SALESFORCE_BULK_API_VERSION": "v62.0",
    }
    assert salesforce["TARGET_SNOWFLAKE_DEFAULT_TARGET_SCHEMA"] == "raw_salesforce"


def test_sample_salesforce_in_prod_without_its_login_url_names_the_variable(local_platform, monkeypatch):
    monkeypatch.delenv("SALESFORCE_LOGIN_URL", raising=False)
    env = use_mode(
        monkeypatch, "prod", SALESFORCE_CLIENT_ID="cid", SALESFORCE_CLIENT_SECRET="s", **SUPPORT_JWT
    )
    with pytest.raises(OrgCredentialsError) as error:
        sample(env)
    assert f"org 'sales' ({ORGS})" in str(error.value)
    assert (
        "orgs.sales.credentials.login_url: the environment variable SALESFORCE_LOGIN_URL is not set"
        in str(error.value)
    )


def test_a_new_source_shape_resolves_env_fallbacks_modes_and_platform_values(
    local_platform, monkeypatch, tmp_path
) -> None:
    monkeypatch.delenv("FOO_REGION", raising=False)
    (source,) = foo_sources(tmp_path, FOO_SETTINGS, local_platform)
    monkeypatch.setenv("FOO_HOST", "api.foo.example")
    monkeypatch.setenv("FOO_TOKEN", "t0ken")
    settings = plugin_settings(local_platform, "tap-foo", "target-bar", "foo", source.settings)
    assert settings == {
        "PLATFORM_SCHEMA_PREFIX": "",
        "TARGET_BAR_DEFAULT_TARGET_SCHEMA": "raw_foo",
        "TAP_FOO_API_URL": "https://api.foo.example/v2",
        "TAP_FOO_TOKEN": "t0ken",
        "TAP_FOO_REGION": "us",
        "TAP_FOO_CACHE_DIR": f"{local_platform.local_dir}/foo-cache",
    }
    prod = use_mode(monkeypatch, "prod")
    assert plugin_settings(prod, "tap-foo", "target-bar", "foo", source.settings)["TAP_FOO_REGION"] == "eu"


def test_a_missing_variable_fails_at_run_time_naming_file_source_key_and_variable(
    local_platform, monkeypatch, tmp_path
) -> None:
    monkeypatch.delenv("FOO_TOKEN", raising=False)
    monkeypatch.setenv("FOO_HOST", "secret-host.example")
    (source,) = foo_sources(tmp_path, FOO_SETTINGS, local_platform)  # loading reads no value
    with pytest.raises(TemplateError) as error:
        plugin_settings(local_platform, "tap-foo", "target-bar", "foo", source.settings)
    message = str(error.value)
    assert f"{tmp_path / 'sources.yaml'}: sources.foo.settings.token" in message
    assert "set the environment variable FOO_TOKEN" in message and "secret-host" not in message


def test_a_url_without_the_part_fails_without_showing_the_url(local_platform, monkeypatch, tmp_path):
    monkeypatch.setenv("FOO_DB", "postgresql://user:hunter2@/nodb")
    (source,) = foo_sources(tmp_path, {"api_url": "{env:FOO_DB.host}"}, local_platform)
    with pytest.raises(TemplateError, match=r"sources\.foo\.settings\.api_url.*has no host") as error:
        plugin_settings(local_platform, "tap-foo", "target-bar", "foo", source.settings)
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"token": "{tokn}"}, r"sources\.foo\.settings\.token: unknown placeholder \{tokn\}.*landing_dir"),
        ({"token": "{env:FOO_TOKEN.scheme}"}, r"settings\.token: .*\.scheme is not a URL part"),
        ({"token": "{env:FOO TOKEN}"}, r"settings\.token: \{env:FOO TOKEN\} is not a placeholder"),
        ({"token": {"staging": "x"}}, r"settings\.token: 'staging' is not a mode"),
        ({"secret": "x"}, r"settings\.secret: 'tap-foo' declares no setting 'secret' in meltano\.yml"),
    ],
)
def test_malformed_settings_fail_at_load_naming_file_source_and_key(
    local_platform, tmp_path, settings, expected
) -> None:
    with pytest.raises(SourcesConfigError, match=expected) as error:
        foo_sources(tmp_path, settings, local_platform)
    assert str(tmp_path / "sources.yaml") in str(error.value)


def test_settings_of_an_unknown_loader_fail_at_load_naming_the_key(local_platform, tmp_path) -> None:
    document = yaml.safe_load(SOURCES.read_text())
    document["loader_settings"]["target-nowhere"] = {"filepath": "{duckdb_path}"}
    file = tmp_path / "sources.yaml"
    file.write_text(yaml.safe_dump(document))
    with pytest.raises(SourcesConfigError, match=r"loader_settings\.target-nowhere: loader 'target-nowhere'"):
        load_sources(file, environment.MELTANO_PROJECT_DIR, LOADERS, local_platform)
