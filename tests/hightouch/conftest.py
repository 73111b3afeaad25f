"""Fixtures for the Hightouch tests: a temp PLATFORM_LOCAL_DIR, a small marketing warehouse of our own
(the dbt models are not needed), and a sandbox on a free loopback port seeded from the real sync YAML."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pytest

from local_stack.sandbox.hightouch import DEFAULT_SYNCS_DIR, HightouchSandbox, start_sandbox
from platform_assets import environment
from platform_assets.components.hightouch_syncs import HightouchSyncsComponent
from platform_assets.warehouse import connect_duckdb

TRIAL = "trial-nurture-braze"
EXPANSION = "expansion-accounts-google-ads"


class MarketingWarehouse:
    """The two audience tables the marketing syncs read, in a DuckDB file of the test's own."""

    def __init__(self, path: Path):
        self.path = path

    def execute(self, *statements: str) -> None:
        connection = connect_duckdb(self.path)
        try:
            for statement in statements:
                connection.execute(statement)
        finally:
            connection.close()

    def set_trial_users(self, rows: Sequence[tuple[str, str, int]]) -> None:
        values = ", ".join(f"('{email}', '{name}', {score})" for email, name, score in rows)
        self.execute(
            "CREATE OR REPLACE TABLE marketing.mkt_audience_trial_nurture "
            "(email VARCHAR, first_name VARCHAR, usage_score INTEGER)",
            *([f"INSERT INTO marketing.mkt_audience_trial_nurture VALUES {values}"] if rows else []),
        )


@pytest.fixture
def local_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[environment.PlatformEnvironment]:
    monkeypatch.setenv("PLATFORM_ENV", "local")
    monkeypatch.setenv("PLATFORM_LOCAL_DIR", str(tmp_path / "local"))
    for variable in ("PLATFORM_DUCKDB_PATH", "HIGHTOUCH_API_BASE_URL", "HIGHTOUCH_SANDBOX_PORT"):
        monkeypatch.delenv(variable, raising=False)
    environment.current.cache_clear()
    yield environment.current()
    environment.current.cache_clear()


@pytest.fixture
def warehouse(local_env: environment.PlatformEnvironment) -> MarketingWarehouse:
    marketing = MarketingWarehouse(local_env.duckdb_path)
    marketing.execute(
        "CREATE SCHEMA marketing",
        "CREATE TABLE marketing.mkt_audience_expansion_accounts AS "
        "SELECT 'ws_' || lpad(i::VARCHAR, 6, '0') AS workspace_id, 40 + i AS seats, 0.9 AS seat_utilisation "
        "FROM range(1, 4) t(i)",
    )
    marketing.set_trial_users([(f"user{i}@example.com", f"User {i}", i) for i in range(1, 6)])
    return marketing


@pytest.fixture
def sandbox(
    local_env: environment.PlatformEnvironment, warehouse: MarketingWarehouse, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HightouchSandbox]:
    running = start_sandbox(
        state_db=local_env.sandbox_dir / "hightouch.sqlite3",
        warehouse=local_env.duckdb_path,
        syncs_dir=DEFAULT_SYNCS_DIR,
        step_seconds=0.01,
    )
    # environment.hightouch_api_base_url reads the port on every call: the component finds this sandbox.
    monkeypatch.setenv("HIGHTOUCH_SANDBOX_PORT", str(running.port))
    yield running
    running.stop()


@pytest.fixture
def build_component_defs(tmp_path: Path):
    """Build the component's Definitions for the repo's sync YAML, with quick polling."""

    def build(**attributes: object) -> dg.Definitions:
        settings: dict[str, object] = {
            "syncs_dir": str(DEFAULT_SYNCS_DIR),
            "poll_interval_seconds": 0.02,
            "backoff_initial_seconds": 0.01,
            **attributes,
        }
        return dg.build_defs_for_component(HightouchSyncsComponent(**settings))

    return build
