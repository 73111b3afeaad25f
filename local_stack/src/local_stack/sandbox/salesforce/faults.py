"""Injected failures: set through `/__sandbox/faults` or SandboxHandle, consumed by the requests and Bulk
jobs they hit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from local_stack.sandbox.salesforce.errors import ApiError
from local_stack.sandbox.salesforce.store import RecordError


@dataclass
class Faults:
    """The faults in force; each counted fault is consumed by the requests it hits."""

    rate_limited: int = 0
    retry_after: int = 1
    server_errors: int = 0
    server_error_status: int = 503
    limit_exceeded: int = 0
    path_filter: str | None = None
    slow_job_seconds: float = 0.0
    failing_jobs: int = 0
    failing_job_message: str = "InternalServerError : the sandbox failed this job on request"
    record_failure_share: float = 0.0
    record_failure_error: str = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    record_failure_message: str = "Injected validation failure"
    record_failure_object: str | None = None
    hold_request: str | None = None
    """"METHOD fragment" (e.g. "PUT /batches"): hold requests of that method whose path contains fragment."""
    hold_skip: int = 0
    """Matching requests let through before holding starts."""
    hold_seconds: float = 0.0
    held: int = 0
    """Requests held so far: a test reads it to know a client reached that point."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self)}

    def update(self, **changes: Any) -> None:
        known = [f.name for f in fields(self)]
        with self._lock:
            for key, value in changes.items():
                if key not in known:
                    raise ValueError(f"Unknown sandbox fault {key!r}; known: {', '.join(known)}")
                setattr(self, key, value)

    def reset(self) -> None:
        with self._lock:
            for f in fields(self):
                setattr(self, f.name, f.default)

    def take_request_fault(self, path: str) -> ApiError | None:
        """The injected error this data request should get, if any (consumes one)."""
        with self._lock:
            if self.path_filter and self.path_filter not in path:
                return None
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return ApiError(
                    429,
                    "REQUEST_LIMIT_EXCEEDED",
                    "Too many requests; retry later.",
                    {"Retry-After": str(self.retry_after)},
                )
            if self.server_errors > 0:
                self.server_errors -= 1
                return ApiError(
                    self.server_error_status,
                    "SERVER_UNAVAILABLE",
                    "The server is temporarily unavailable.",
                    {"Retry-After": str(self.retry_after)} if self.server_error_status == 503 else {},
                )
            if self.limit_exceeded > 0:
                self.limit_exceeded -= 1
                return ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return None

    def hold(self, method: str, path: str) -> bool:
        """Keep a matching request waiting, unprocessed, for hold_seconds; True when the faults were reset
        meanwhile: the request is then dropped, as if its client had died before it arrived."""
        with self._lock:
            wanted, _, fragment = (self.hold_request or "").partition(" ")
            if not wanted or method != wanted or fragment not in path:
                return False
            if self.hold_skip > 0:
                self.hold_skip -= 1
                return False
            self.held += 1
            deadline = time.monotonic() + self.hold_seconds
        while time.monotonic() < deadline:
            if not self.hold_request:
                return True
            time.sleep(0.05)
        return False

    def take_job_failure(self) -> str | None:
        """The message an ingest job should fail with, if any (consumes one)."""
        with self._lock:
            if self.failing_jobs <= 0:
                return None
            self.failing_jobs -= 1
            return self.failing_job_message

    def hold_job(self) -> None:
        """Keep the Bulk job being processed InProgress for slow_job_seconds."""
        with self._lock:
            seconds = self.slow_job_seconds
        if seconds > 0:
            time.sleep(seconds)

    def record_failures(self, sobject: str) -> Callable[[int], RecordError | None]:
        """The injected failure of an ingest job's record by its index, for a job on `sobject`."""
        with self._lock:
            applies = self.record_failure_object in (None, sobject)
            share = self.record_failure_share if applies else 0.0
            code, message = self.record_failure_error, self.record_failure_message

        def inject(index: int) -> RecordError | None:
            # Deterministic: exactly `share` of the records fail, spread evenly.
            if share > 0 and int((index + 1) * share) > int(index * share):
                return RecordError(code, message)
            return None

        return inject
