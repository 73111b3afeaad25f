"""Fixtures every test area shares. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from platform_assets import environment


@pytest.fixture
def local_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[environment.PlatformEnvironment]:
    """A local platform environment whose state (warehouse, landing folder, instance) lives in tmp_path."""
    for variable in (
        "PLATFORM_ENV",
        "PLATFORM_DUCKDB_PATH",
        "PLATFORM_LANDING_DIR",
        "PLATFORM_LANDING_URL",
        "PLATFORM_S3_ENDPOINT_URL",
        "PLATFORM_APP_DB_URL",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PLATFORM_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "local" / "dagster_home"))
    (tmp_path / "local" / "dagster_home").mkdir(parents=True)
    environment.current.cache_clear()
    yield environment.current()
    environment.current.cache_clear()


@pytest.fixture(scope="session")
def prod_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as the production image holds it: dbt manifest prepared for Snowflake.

    One per session, for every area that loads ci/prod definitions (production, platform).
    """
    from production.production_support import prepare_prod_build

    return prepare_prod_build(tmp_path_factory.mktemp("prod_build"))


def postgres_reachable(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


requires_postgres = pytest.mark.skipif(
    not postgres_reachable(), reason="PostgreSQL is not reachable at 127.0.0.1:5432 (CI has it)"
)


@pytest.fixture(scope="session")
def s3_sandbox() -> Iterator[str]:
    """The local S3-compatible server (moto's server mode, real S3 HTTP API) on a free loopback port, in
    this process; yields its endpoint URL. Each test uses its own bucket (`s3_landing`)."""
    from local_stack.sandbox.s3 import running

    with running(port=0) as endpoint_url:
        yield endpoint_url
