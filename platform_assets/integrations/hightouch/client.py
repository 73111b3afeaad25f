"""A thin client for the Hightouch REST API (v1): find a sync, trigger it, poll its run.

Why not dagster-hightouch's resource: it hard-codes `https://api.hightouch.io/api/v1/` (its
`ConfigurableHightouchResource` builds a `HightouchResource` whose `api_base_url` is a constant), retries
every request error the same way (a 401 is retried like a 429, with a fixed 0.25 s delay and no backoff),
cannot trigger by slug or ask for a full resync, and is only a dev dependency of this project. This
client is small, takes its base URL from configuration (the local sandbox or the real API) and retries
only what is worth retrying: 429 and 5xx (honouring `Retry-After`) and dropped connections.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import tenacity

DEFAULT_API_BASE_URL = "https://api.hightouch.com/api/v1"
PENDING_STATUSES = frozenset({"queued", "querying", "processing", "reporting", "pending"})
FAILED_STATUSES = frozenset({"failed", "cancelled", "interrupted"})
TERMINAL_STATUSES = FAILED_STATUSES | {"success", "warning"}

_log = logging.getLogger(__name__)


class HightouchError(RuntimeError):
    """Anything the Hightouch API said no to, or a run that could not be followed."""


class HightouchApiError(HightouchError):
    """A non-2xx answer from the API, with its status code and Hightouch's own message."""

    def __init__(self, method: str, path: str, status_code: int, message: str, retry_after: float | None):
        super().__init__(f"Hightouch API {method} {path} answered {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status_code == 429 or self.status_code >= 500


class HightouchRunTimeout(HightouchError):
    """The run did not reach a terminal status within the poll timeout (it goes on in Hightouch)."""

    def __init__(self, sync_id: str, run: HightouchRun, waited_seconds: float):
        super().__init__(
            f"Hightouch run {run.id} of sync {sync_id} is still '{run.status}' after {waited_seconds:.0f} s "
            f"({100 * run.completion_ratio:.0f}% done); it goes on in Hightouch. Raise the poll timeout "
            "or look at the run in Hightouch."
        )
        self.run = run


@dataclass(frozen=True)
class RowCounts:
    added: int = 0
    changed: int = 0
    removed: int = 0

    @property
    def total(self) -> int:
        return self.added + self.changed + self.removed

    @classmethod
    def from_api(cls, counts: Mapping[str, Any] | None) -> RowCounts:
        counts = counts or {}
        return cls(
            added=int(counts.get("addedCount") or 0),
            changed=int(counts.get("changedCount") or 0),
            removed=int(counts.get("removedCount") or 0),
        )


@dataclass(frozen=True)
class HightouchRun:
    """One run of a sync as `GET /syncs/{id}/runs` reports it."""

    id: str
    status: str
    planned: RowCounts
    successful: RowCounts
    failed: RowCounts
    completion_ratio: float
    query_size: int | None
    error: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_api(cls, run: Mapping[str, Any]) -> HightouchRun:
        query_size = run.get("querySize")
        return cls(
            id=str(run["id"]),
            status=str(run.get("status", "")),
            planned=RowCounts.from_api(run.get("plannedRows")),
            successful=RowCounts.from_api(run.get("successfulRows")),
            failed=RowCounts.from_api(run.get("failedRows")),
            completion_ratio=float(run.get("completionRatio") or 0.0),
            query_size=int(query_size) if query_size is not None else None,
            error=_error_text(run.get("error")),
            created_at=run.get("createdAt"),
            started_at=run.get("startedAt"),
            finished_at=run.get("finishedAt"),
        )


def _error_text(error: Any) -> str | None:
    """Hightouch reports a run's error as a string or as an object with a message."""
    if error is None or error == "":
        return None
    if isinstance(error, Mapping):
        return str(error.get("message") or error)
    return str(error)


def _retry_worthy(error: BaseException) -> bool:
    if isinstance(error, HightouchApiError):
        return error.retryable
    return isinstance(error, requests.ConnectionError | requests.Timeout)


class HightouchClient:
    """Hightouch REST API v1 over `requests`; the API key goes only into the Authorization header."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_seconds: float = 30.0,
        max_attempts: int = 6,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        log: logging.Logger | None = None,
    ):
        if not api_key:
            raise HightouchError(
                "No Hightouch API key: set HIGHTOUCH_API_KEY (prod) or use the local sandbox."
            )
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout_seconds
        self._max_attempts = max(1, max_attempts)
        self._backoff = tenacity.wait_exponential_jitter(
            initial=backoff_initial_seconds, max=backoff_max_seconds, jitter=backoff_initial_seconds
        )
        self._backoff_max = backoff_max_seconds
        self._log = log or _log
        self._session = requests.Session()
        self._session.headers.update(
            {"Authorization": f"Bearer {api_key}", "User-Agent": "platform-assets-hightouch/1"}
        )

    # -- syncs, runs, destinations -------------------------------------------------------------------

    def list_syncs(self, slug: str | None = None) -> list[dict[str, Any]]:
        params = {"slug": slug} if slug else None
        return list(self._request("GET", "/syncs", params=params).get("data", []))

    def get_sync(self, sync_id: str) -> dict[str, Any]:
        return self._request("GET", f"/syncs/{sync_id}")

    def find_sync(self, *, sync_id: str | None = None, slug: str | None = None) -> dict[str, Any]:
        """The sync with this id, or else the one with this slug."""
        if sync_id:
            return self.get_sync(sync_id)
        if not slug:
            raise HightouchError("A Hightouch sync is named by its id or its slug; neither was given.")
        matches = [sync for sync in self.list_syncs(slug=slug) if sync.get("slug") == slug]
        if not matches:
            raise HightouchError(
                f"No Hightouch sync has the slug '{slug}': create it in Hightouch or fix the slug."
            )
        return matches[0]

    def trigger_sync(
        self, *, sync_id: str | None = None, slug: str | None = None, full_resync: bool = False
    ) -> str:
        """Start a run and return its id (`POST /syncs/{id}/trigger`, or `POST /syncs/trigger` by slug)."""
        if sync_id:
            answer = self._request("POST", f"/syncs/{sync_id}/trigger", body={"fullResync": full_resync})
        elif slug:
            answer = self._request(
                "POST", "/syncs/trigger", body={"syncSlug": slug, "fullResync": full_resync}
            )
        else:
            raise HightouchError("A Hightouch sync is triggered by its id or its slug; neither was given.")
        return str(answer["id"])

    def get_run(self, sync_id: str, run_id: str) -> HightouchRun:
        runs = self._request("GET", f"/syncs/{sync_id}/runs", params={"runId": run_id}).get("data", [])
        for run in runs:
            if str(run.get("id")) == str(run_id):
                return HightouchRun.from_api(run)
        raise HightouchError(f"Hightouch lists no run {run_id} for sync {sync_id}.")

    def get_destination(self, destination_id: str) -> dict[str, Any]:
        return self._request("GET", f"/destinations/{destination_id}")

    def wait_for_run(
        self,
        sync_id: str,
        run_id: str,
        *,
        poll_interval_seconds: float = 2.0,
        timeout_seconds: float = 3600.0,
        on_change: Callable[[HightouchRun], None] | None = None,
    ) -> HightouchRun:
        """Poll the run until it reaches a terminal status; `on_change` sees every new status."""
        started = time.monotonic()
        last_status = None
        while True:
            run = self.get_run(sync_id, run_id)
            if run.status != last_status and on_change is not None:
                on_change(run)
            last_status = run.status
            if run.is_terminal:
                return run
            waited = time.monotonic() - started
            if waited >= timeout_seconds:
                raise HightouchRunTimeout(sync_id, run, waited)
            time.sleep(min(poll_interval_seconds, max(0.0, timeout_seconds - waited)))

    # -- transport --------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> dict[str, Any]:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retry_worthy),
            wait=self._wait,
            stop=tenacity.stop_after_attempt(self._max_attempts),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(self._send, method, path, params, body)

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any) -> dict[str, Any]:
        response = self._session.request(
            method, f"{self.base_url}{path}", params=params, json=body, timeout=self._timeout
        )
        if response.status_code >= 400:
            raise HightouchApiError(
                method, path, response.status_code, _message_of(response), _retry_after(response)
            )
        return response.json() if response.content else {}

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        """Exponential backoff with jitter, but never sooner than the API's own Retry-After."""
        backoff = self._backoff(retry_state)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return max(backoff, min(retry_after, self._backoff_max))
        return backoff

    def _before_sleep(self, retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
        self._log.warning(
            f"Hightouch request failed ({error}); attempt {retry_state.attempt_number} of "
            f"{self._max_attempts}, retrying in {sleep:.2f} s."
        )


def _message_of(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error") or body
        details = body.get("details")
        return f"{message} ({details})" if details else str(message)
    return str(body)[:500]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
