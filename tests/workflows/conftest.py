"""A real Dagster instance (SQLite, temporary) and the real DuckDB warehouse of a temporary platform."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from platform_assets import environment
from platform_assets.warehouse import DuckDBWarehouse


@pytest.fixture
def warehouse(local_platform: environment.PlatformEnvironment) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(local_platform.duckdb_path))


@pytest.fixture
def instance(local_platform: environment.PlatformEnvironment) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(local_platform.dagster_home)) as test_instance:
        yield test_instance


def sql(warehouse: DuckDBWarehouse, *statements: str) -> list[tuple]:
    """Run statements against the warehouse; the rows of the last one."""
    rows: list[tuple] = []
    with warehouse.session() as session:
        for statement in statements:
            rows = session.fetchall(statement)
    return rows
