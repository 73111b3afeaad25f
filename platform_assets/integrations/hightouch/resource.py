"""The `hightouch` resource: API settings, building the REST client on demand."""

from typing import Any

import dagster as dg

from platform_assets.integrations.hightouch.client import DEFAULT_API_BASE_URL, HightouchClient


class HightouchResource(dg.ConfigurableResource):
    """Connection settings for the Hightouch API (the real one, or the local sandbox)."""

    api_key: str
    base_url: str = DEFAULT_API_BASE_URL
    app_url: str | None = None
    """Where runs can be seen: '<app_url>/syncs/<id>/runs/<run id>' (the sandbox, or the Hightouch app)."""
    request_timeout_seconds: float = 30.0
    max_attempts: int = 6
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    poll_interval_seconds: float = 2.0
    poll_timeout_seconds: float = 3600.0

    def get_client(self, log: Any = None) -> HightouchClient:
        return HightouchClient(
            self.base_url,
            self.api_key,
            timeout_seconds=self.request_timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_initial_seconds=self.backoff_initial_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            log=log,
        )

    def run_url(self, sync_id: str, run_id: str) -> str | None:
        return f"{self.app_url.rstrip('/')}/syncs/{sync_id}/runs/{run_id}" if self.app_url else None
