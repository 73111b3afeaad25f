"""Fixtures for the Salesforce client, sandbox and tap tests: a sandbox per test on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sf_helpers import MANAGER_ID, credentials_for, fast_client

from local_stack.sandbox.salesforce import SandboxHandle, start_sandbox
from local_stack.sandbox.salesforce.schema import forget_added_fields
from platform_assets.integrations.salesforce.client import SalesforceClient


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxHandle]:
    with start_sandbox(db_path=tmp_path / "org.sqlite") as handle:
        yield handle


@pytest.fixture
def added_fields() -> Iterator[None]:
    """For tests that add fields to the sandbox's objects: the catalog is the process's, so forget them."""
    yield
    forget_added_fields()


@pytest.fixture
def client(sandbox: SandboxHandle) -> SalesforceClient:
    return fast_client(credentials_for(sandbox))


@pytest.fixture
def make_client(sandbox: SandboxHandle) -> Callable[..., SalesforceClient]:
    return lambda **overrides: fast_client(credentials_for(sandbox), **overrides)


@pytest.fixture
def seeded(sandbox: SandboxHandle) -> SandboxHandle:
    """One account manager and three accounts."""
    sandbox.seed(
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
    return sandbox
