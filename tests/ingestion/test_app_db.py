"""The app_db source: PostgreSQL schema `app` -> raw_app_db via tap-postgres (incremental on updated_at)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dagster as dg
import psycopg2
import pytest

from local_stack.sample_company import write_app_db
from platform_assets import environment
from platform_assets.components.meltano import CHECK_NAME, ingestion_definitions
from platform_assets.resources import warehouse_resource

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
SOURCES = environment.PROJECT_ROOT / "platform_assets" / "defs" / "ingestion" / "sources.yaml"


def _admin_url() -> str:
    for user in ("postgres", "root"):
        url = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            psycopg2.connect(url, connect_timeout=2).close()
            return url
        except psycopg2.OperationalError:
            continue
    pytest.skip(
        "PostgreSQL at 127.0.0.1:5432 (database test, user postgres or root, trust auth) is unreachable"
    )


@pytest.fixture
def app_db_url(local_platform, monkeypatch, meltano_plugins, meltano_installer) -> Iterator[str]:
    admin = _admin_url()
    meltano_installer(meltano_plugins, (("extractor", "tap-postgres"),))
    name = f"ingestion_test_{uuid.uuid4().hex[:10]}"
    connection = psycopg2.connect(admin)
    connection.autocommit = True
    connection.cursor().execute(f"CREATE DATABASE {name}")
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    monkeypatch.setenv("PLATFORM_APP_DB_URL", url)
    environment.current.cache_clear()
    try:
        yield url
    finally:
        connection.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.close()


def test_app_db_tables_load_then_only_changed_rows_load(app_db_url):
    counts = write_app_db(app_db_url, scale=0.02, seed=3)
    defs = ingestion_definitions(SOURCES, environment.MELTANO_PROJECT_DIR)
    keys = [dg.AssetKey(["raw", "app_db", t]) for t in ("workspaces", "users", "subscriptions")]
    resources = {**(defs.resources or {}), "warehouse": warehouse_resource()}

    def run() -> dict[str, dict]:
        result = dg.materialize(list(defs.assets or []), selection=keys, resources=resources)
        assert all(e.passed for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME)
        return {
            e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()
        }

    first = run()
    assert {t: m["rows_landed"] for t, m in first.items()} == counts
    assert first["users"]["target_table"] == "raw_app_db.users"
    with psycopg2.connect(app_db_url) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE app.users SET title = 'CFO', updated_at = now() WHERE user_id = 'usr_0000001'")
    connection.close()
    second = run()
    # The bookmark row is re-read (>=), so the changed user plus at most the bookmarked rows come back.
    assert second["users"]["rows_extracted"] >= 1 and second["users"]["rows_extracted"] < counts["users"]
    assert second["users"]["rows_landed"] == second["users"]["rows_extracted"]
    assert second["workspaces"]["rows_extracted"] <= 1
