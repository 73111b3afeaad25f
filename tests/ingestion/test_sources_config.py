"""sources.yaml -> asset specs: keys, groups, kinds, owners; config errors name the file and key."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_assets import environment
from platform_assets.components.meltano import CHECK_NAME, SourcesConfigError, ingestion_definitions

SOURCES = environment.PROJECT_ROOT / "platform_assets" / "defs" / "ingestion" / "sources.yaml"
MELTANO = environment.MELTANO_PROJECT_DIR


def specs(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    return {spec.key: spec for asset in defs.assets or [] for spec in asset.specs}


def write_sources(tmp_path: Path, change) -> Path:
    document = yaml.safe_load(SOURCES.read_text())
    change(document["sources"])
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_each_stream_is_an_asset_with_contract_key_group_kinds_tag_and_check(local_platform):
    defs = ingestion_definitions(SOURCES, MELTANO)
    by_key = specs(defs)
    spec = by_key[dg.AssetKey(["raw", "landing", "usage_events"])]
    assert spec.group_name == "ingestion_landing"
    assert spec.kinds == {"meltano", "duckdb"} and spec.tags["layer"] == "ingestion"
    assert spec.owners == ["team:product-analytics"] and spec.description
    assert spec.metadata["target_table"].value == "raw_landing.usage_events"
    landing = [k for k in by_key if k.path[1] == "landing"]
    assert len(landing) == 9
    [asset] = [a for a in defs.assets if dg.AssetKey(["raw", "landing", "campaigns"]) in a.keys]
    assert asset.can_subset and asset.op.pool == "warehouse"
    assert {c.name for c in asset.check_specs} == {CHECK_NAME}
    assert "meltano" in (defs.resources or {})


def test_app_db_is_defined_only_where_its_url_is_set(local_platform, monkeypatch):
    assert not any(k.path[1] == "app_db" for k in specs(ingestion_definitions(SOURCES, MELTANO)))
    monkeypatch.setenv("PLATFORM_APP_DB_URL", "postgresql://nobody@127.0.0.1:1/none")
    keys = specs(ingestion_definitions(SOURCES, MELTANO))
    assert dg.AssetKey(["raw", "app_db", "subscriptions"]) in keys
    assert keys[dg.AssetKey(["raw", "app_db", "users"])].metadata["tap_stream"].value == "app-users"


def test_ci_assets_are_snowflake_kinds_with_branch_prefixed_tables(local_platform, monkeypatch):
    monkeypatch.setenv("PLATFORM_ENV", "ci")
    monkeypatch.setenv("PLATFORM_BRANCH", "feature/x")
    environment.current.cache_clear()
    spec = specs(ingestion_definitions(SOURCES, MELTANO))[dg.AssetKey(["raw", "salesforce", "account"])]
    assert spec.kinds == {"meltano", "snowflake"}
    assert spec.metadata["target_table"].value == "ci_feature_x_raw_salesforce.account"
    assert spec.metadata["meltano_pipeline"].value == "tap-salesforce-bulk -> target-snowflake"


def test_unknown_extractor_fails_load_naming_file_and_key(local_platform, tmp_path):
    path = write_sources(tmp_path, lambda s: s["landing"].update(extractor="tap-csv"))
    with pytest.raises(SourcesConfigError, match=rf"{path}: sources.landing.extractor: extractor 'tap-csv'"):
        ingestion_definitions(path, MELTANO)


def test_unknown_loader_fails_load_naming_file_and_key(local_platform, tmp_path):
    path = write_sources(tmp_path, lambda s: s["landing"].update(loader="target-parquet"))
    with pytest.raises(SourcesConfigError, match=r"sources.landing.loader: loader 'target-parquet'"):
        ingestion_definitions(path, MELTANO)


def test_stream_not_declared_for_its_extractor_fails_load_naming_it(local_platform, tmp_path):
    path = write_sources(tmp_path, lambda s: s["landing"]["streams"].update(orders={"description": "x"}))
    with pytest.raises(
        SourcesConfigError,
        match=r"sources.landing.streams.orders: stream 'orders' is not "
        r"declared for extractor 'tap-landing'",
    ):
        ingestion_definitions(path, MELTANO)


def test_invalid_owner_fails_load(local_platform, tmp_path):
    path = write_sources(tmp_path, lambda s: s["salesforce"].update(owners=["revops"]))
    with pytest.raises(SourcesConfigError, match=r"owner 'revops' is not an email or team:<name>"):
        ingestion_definitions(path, MELTANO)
