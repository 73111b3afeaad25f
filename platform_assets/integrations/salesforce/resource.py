"""The `salesforce` resource: connection settings of one org, building the protocol client on demand."""

import dagster as dg

from platform_assets.integrations.salesforce.client import (
    PLATFORM_CLIENT_NAME,
    SalesforceClient,
    SalesforceCredentials,
)


class SalesforceResource(dg.ConfigurableResource):
    """Builds the Salesforce client. Secrets arrive through dg.EnvVar and are never logged."""

    login_url: str
    client_id: str
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    api_version: str = "v62.0"
    max_attempts: int = 8
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    poll_interval: float = 0.5
    timeout: float = 60.0
    client_name: str = PLATFORM_CLIENT_NAME
    """Sforce-Call-Options client: how the change events of the platform's own writes are recognised."""

    def get_client(self) -> SalesforceClient:
        credentials = SalesforceCredentials(
            login_url=self.login_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            username=self.username,
            private_key=self.private_key,
            api_version=self.api_version,
        )
        return SalesforceClient(
            credentials,
            max_attempts=self.max_attempts,
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max,
            poll_interval=self.poll_interval,
            timeout=self.timeout,
            client_name=self.client_name,
        )
