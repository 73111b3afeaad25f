"""Fixtures for the Salesforce sync tests: a sandbox org on a free loopback port, a temp DuckDB warehouse
with a small activation model, and a helper that runs one sync against both."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local_stack.sandbox.salesforce import SandboxHandle, start_sandbox
from platform_assets import environment
from platform_assets.integrations.salesforce.client import SalesforceClient, SalesforceCredentials
from platform_assets.integrations.salesforce.sync_engine import SalesforceSyncRun, SyncReport
from platform_assets.integrations.salesforce.sync_spec import SyncSpec
from platform_assets.warehouse import DuckDBWarehouse, connect_duckdb

MANAGER_ID = "0058d0000000001AAA"
LEAD_MAPPING = {
    "Signup_Id__c": "Signup_Id__c",
    "FirstName": "FirstName",
    "LastName": "LastName",
    "Company": "Company",
    "Email": "Email",
    "Product_Usage_Score__c": "Product_Usage_Score__c",
    "Last_Active_At__c": "Last_Active_At__c",
}


def lead_spec(**overrides: Any) -> SyncSpec:
    settings: dict[str, Any] = dict(
        name="test_leads",
        model="act_test_leads",
        object="Lead",
        mode="upsert",
        external_id_field="Signup_Id__c",
        primary_key="signup_id",
        mapping=LEAD_MAPPING,
        batch_size=25,
        source_file="syncs/test_leads.yaml",
    )
    settings.update(overrides)
    return SyncSpec(**settings)


def fast_client(handle: SandboxHandle, **overrides: Any) -> SalesforceClient:
    settings: dict[str, Any] = dict(
        max_attempts=5, backoff_initial=0.01, backoff_max=0.05, poll_interval=0.02, timeout=10.0
    )
    settings.update(overrides)
    credentials = SalesforceCredentials(handle.url, handle.client_id, handle.client_secret)
    return SalesforceClient(credentials, **settings)


class Warehouse:
    """The temp DuckDB warehouse: builds the activation model and reads sync tables."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.resource = DuckDBWarehouse(path=str(path))

    def sql(self, statement: str, params: list[Any] | None = None) -> list[tuple]:
        connection = connect_duckdb(self.path)
        try:
            result = connection.execute(statement, params or [])
            return result.fetchall() if result.description else []
        finally:
            connection.close()

    def make_leads(self, count: int, table: str = "act_test_leads") -> None:
        self.sql("CREATE SCHEMA IF NOT EXISTS activation")
        self.sql(
            f"CREATE OR REPLACE TABLE activation.{table} AS SELECT "
            "'sgn_' || lpad(i::VARCHAR, 6, '0') AS signup_id, "
            "'sgn_' || lpad(i::VARCHAR, 6, '0') AS Signup_Id__c, "
            "'First ' || i AS FirstName, 'Last ' || i AS LastName, 'Company ' || (i % 7) AS Company, "
            "'user' || i || '@example.com' AS Email, (i * 1.5)::DOUBLE AS Product_Usage_Score__c, "
            "TIMESTAMP '2026-03-01 12:00:00' + to_minutes(i) AS Last_Active_At__c "
            "FROM range(?) t(i)",
            [count],
        )

    def state(self, sync_name: str = "test_leads") -> dict[str, tuple]:
        rows = self.sql(
            "SELECT record_key, row_hash, salesforce_id FROM platform_sync.sync_state WHERE sync_name = ?",
            [sync_name],
        )
        return {key: (row_hash, salesforce_id) for key, row_hash, salesforce_id in rows}

    def failures(self, sync_name: str = "test_leads") -> dict[str, tuple]:
        rows = self.sql(
            "SELECT record_key, change_type, error, attempts FROM platform_sync.sync_failures "
            "WHERE sync_name = ?",
            [sync_name],
        )
        return {key: (change_type, error, attempts) for key, change_type, error, attempts in rows}


@pytest.fixture
def org(tmp_path: Path) -> Iterator[SandboxHandle]:
    with start_sandbox(db_path=tmp_path / "org.sqlite") as handle:
        handle.seed(
            {
                "User": [
                    {
                        "Id": MANAGER_ID,
                        "LastName": "Manager",
                        "Email": "am@example.com",
                        "Username": "am@example.com",
                    }
                ],
                "Account": [
                    {"Name": f"Acme {i}", "Workspace_Id__c": f"ws_{i:06d}", "OwnerId": MANAGER_ID}
                    for i in range(1, 4)
                ],
            }
        )
        yield handle


@pytest.fixture
def warehouse(local_platform: environment.PlatformEnvironment) -> Warehouse:
    return Warehouse(local_platform.duckdb_path)


@pytest.fixture
def sync(org: SandboxHandle, warehouse: Warehouse) -> Callable[..., SyncReport]:
    """Run one sync: sync(spec, full_resync=False, client=None) -> SyncReport."""
    counter = iter(range(1_000_000))

    def run(spec: SyncSpec, client: SalesforceClient | None = None, **options: Any) -> SyncReport:
        return SalesforceSyncRun(
            spec=spec,
            warehouse=warehouse.resource,
            client=client or fast_client(org),
            sync_schema="platform_sync",
            model_schema="activation",
            run_id=f"run-{next(counter)}",
            **options,
        ).run()

    return run
