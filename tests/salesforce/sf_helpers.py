"""Helpers shared by the Salesforce tests (imported by module name: tests/ is not a package)."""

from __future__ import annotations

from local_stack.sandbox.salesforce import SandboxHandle
from platform_assets.integrations.salesforce.client import SalesforceClient, SalesforceCredentials

MANAGER_ID = "0058d0000000001AAA"


def credentials_for(handle: SandboxHandle) -> SalesforceCredentials:
    return SalesforceCredentials(
        login_url=handle.url, client_id=handle.client_id, client_secret=handle.client_secret
    )


def fast_client(credentials: SalesforceCredentials, **overrides: float) -> SalesforceClient:
    """A client whose backoff and polling are quick enough for tests."""
    settings = dict(max_attempts=5, backoff_initial=0.01, backoff_max=0.05, poll_interval=0.02, timeout=10.0)
    settings.update(overrides)
    return SalesforceClient(credentials, **settings)


def leads(count: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {
            "LastName": f"Lead {i}",
            "Company": f"Co {i}",
            "Email": f"lead{i}@example.com",
            "Signup_Id__c": f"sgn_{i:06d}",
            "Product_Usage_Score__c": i / 10,
        }
        for i in range(start, start + count)
    ]
