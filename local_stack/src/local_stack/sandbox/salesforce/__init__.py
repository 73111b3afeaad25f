"""A local Salesforce org on loopback: OAuth, REST, Bulk API 2.0 ingest and query, with fault injection,
and its change events on the Pub/Sub API (gRPC, on its own port).

Run it:   python -m local_stack.sandbox.salesforce --port 8791 --db .local/sandbox/salesforce.sqlite
Use it in tests:

    with start_sandbox(db_path=tmp_path / "org.sqlite") as sandbox:
        sandbox.url                      # http://127.0.0.1:<port>, the token host and the instance URL
        sandbox.pubsub_url               # http://127.0.0.1:<port> of the Pub/Sub API (plaintext gRPC)
        sandbox.rate_limit(3, retry_after=1)
        sandbox.expire_sessions()
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.sandbox.salesforce.auth import DEFAULT_DAILY_API_LIMIT
from local_stack.sandbox.salesforce.pubsub import KEEPALIVE_SECONDS, start_pubsub_server
from local_stack.sandbox.salesforce.schema import FieldSpec
from local_stack.sandbox.salesforce.seed import seed
from local_stack.sandbox.salesforce.server import Sandbox, make_server
from local_stack.sandbox.salesforce.tls import CERT_FILE
from platform_assets.environment import SANDBOX_SALESFORCE_CLIENT_ID, SANDBOX_SALESFORCE_CLIENT_SECRET

__all__ = ["SandboxHandle", "sample_company_org", "start_sandbox"]


@dataclass
class SandboxHandle:
    """A running sandbox in this process (a server thread); also a context manager that stops it."""

    sandbox: Sandbox
    server: Any
    thread: threading.Thread
    db_path: Path
    ca_cert: Path | None = None
    """With tls=True: the self-signed certificate to trust (requests' `verify=`)."""
    pubsub_server: Any = None
    pubsub_port: int = 0

    @property
    def pubsub_url(self) -> str:
        """Where the Pub/Sub API (gRPC, plaintext) answers, as the platform's SALESFORCE_PUBSUB_URL."""
        return f"http://127.0.0.1:{self.pubsub_port}"

    @property
    def url(self) -> str:
        return self.sandbox.url

    @property
    def client_id(self) -> str:
        return self.sandbox.auth.client_id

    @property
    def client_secret(self) -> str:
        return self.sandbox.auth.client_secret

    def stop(self) -> None:
        if self.pubsub_server is not None:
            self.pubsub_server.stop(grace=None)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        self.sandbox.close()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ fault injection

    def expire_sessions(self) -> None:
        """Invalidate every issued token: the next data call gets 401 INVALID_SESSION_ID."""
        self.sandbox.auth.expire_sessions()

    def rate_limit(self, count: int, retry_after: int = 1, path: str | None = None) -> None:
        """The next `count` data calls (optionally only paths containing `path`) get 429 with Retry-After."""
        self.sandbox.faults.update(rate_limited=count, retry_after=retry_after, path_filter=path)

    def server_errors(self, count: int, status: int = 503, path: str | None = None) -> None:
        """The next `count` data calls get HTTP `status` (5xx)."""
        self.sandbox.faults.update(server_errors=count, server_error_status=status, path_filter=path)

    def request_limit_exceeded(self, count: int) -> None:
        """The next `count` data calls get 403 REQUEST_LIMIT_EXCEEDED."""
        self.sandbox.faults.update(limit_exceeded=count)

    def slow_jobs(self, seconds: float) -> None:
        """Every Bulk job stays InProgress for `seconds` before it is processed."""
        self.sandbox.faults.update(slow_job_seconds=seconds)

    def fail_records(
        self,
        share: float,
        error: str = "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        message: str = "Injected validation failure",
        sobject: str | None = None,
    ) -> None:
        """This share (0..1) of otherwise valid records in each ingest job fails with `error`."""
        self.sandbox.faults.update(
            record_failure_share=share,
            record_failure_error=error,
            record_failure_message=message,
            record_failure_object=sobject,
        )

    def fail_jobs(
        self, count: int, message: str = "InternalServerError : the sandbox failed this job"
    ) -> None:
        """The next `count` ingest jobs end Failed with all their records unprocessed."""
        self.sandbox.faults.update(failing_jobs=count, failing_job_message=message)

    def hold_requests(self, request: str, seconds: float = 120.0, skip: int = 0) -> None:
        """Requests matching `request` ("METHOD path-fragment", e.g. "PUT /batches") wait unprocessed for
        `seconds` (after `skip` matching ones pass); reset_faults drops them unanswered, as if their client
        had died first. `held_requests()` counts those that arrived."""
        self.sandbox.faults.update(hold_request=request, hold_seconds=seconds, hold_skip=skip, held=0)

    def held_requests(self) -> int:
        return int(self.sandbox.faults.to_dict()["held"])

    def reset_faults(self) -> None:
        self.sandbox.faults.reset()

    def counters(self) -> dict[str, int]:
        """Calls per endpoint (route name, e.g. 'ingest_create', 'token') since start or reset."""
        return self.sandbox.endpoint_counts()

    def register_jwt_key(self, client_id: str, public_key_pem: str) -> None:
        """Trust JWT-bearer assertions from `client_id` signed by this RSA public key."""
        self.sandbox.auth.jwt_public_keys[client_id] = public_key_pem

    def seed(self, data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return seed(self.sandbox.org, data)

    def add_field(self, sobject: str, name: str, field_type: str = "string", **flags: Any) -> None:
        """Add a field to an object, as an admin does in Setup (flags: FieldSpec's, e.g. length=80)."""
        self.sandbox.org.add_field(sobject, FieldSpec(name, field_type, **flags))

    def count(self, sobject: str, include_deleted: bool = False) -> int:
        return self.sandbox.org.count(sobject, include_deleted)

    def change_event_bounds(self) -> tuple[int, int]:
        """(replay number before the oldest retained change event, the newest one)."""
        with self.sandbox.org.lock:
            return self.sandbox.org.events.bounds()

    def expire_change_events(self, through: int) -> None:
        """Forget change events up to this replay number, as Salesforce does after 72 hours."""
        with self.sandbox.org.lock:
            self.sandbox.org.events.trim(through)


def start_sandbox(
    port: int = 0,
    db_path: str | Path = "salesforce-sandbox.sqlite",
    *,
    host: str = "127.0.0.1",
    client_id: str = SANDBOX_SALESFORCE_CLIENT_ID,
    client_secret: str = SANDBOX_SALESFORCE_CLIENT_SECRET,
    jwt_public_keys: dict[str, str] | None = None,
    daily_api_limit: int = DEFAULT_DAILY_API_LIMIT,
    tls: bool = False,
    pubsub_port: int | None = 0,
    pubsub_keepalive_seconds: float = KEEPALIVE_SECONDS,
) -> SandboxHandle:
    """Start a sandbox on a server thread (port 0 = any free port). Records persist in `db_path`.
    The Pub/Sub API listens on `pubsub_port` (0 = any free port, None = not served)."""
    db_path = Path(db_path)
    sandbox = Sandbox(
        db_path,
        client_id=client_id,
        client_secret=client_secret,
        jwt_public_keys=jwt_public_keys,
        daily_api_limit=daily_api_limit,
    )
    tls_dir = db_path.parent / f"{db_path.stem}-tls" if tls else None
    server = make_server(sandbox, host, port, tls_dir)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="salesforce-sandbox", daemon=True
    )
    thread.start()
    handle = SandboxHandle(sandbox, server, thread, db_path, (tls_dir / CERT_FILE) if tls_dir else None)
    if pubsub_port is not None:
        try:
            handle.pubsub_server, handle.pubsub_port = start_pubsub_server(
                sandbox, host, pubsub_port, pubsub_keepalive_seconds
            )
        except OSError:
            handle.stop()
            raise
    return handle


def sample_company_org(scale: float, seed_value: int) -> dict[str, list[dict[str, Any]]]:
    """The sample company's Salesforce org (users, accounts, contacts, leads, …) from its generator."""
    from local_stack import sample_company

    return sample_company.generate_salesforce_org(scale, seed_value)


def admin(
    url: str,
    action: str,
    payload: dict[str, Any] | None = None,
    key: str = SANDBOX_SALESFORCE_CLIENT_SECRET,
) -> dict[str, Any]:
    """Call a running sandbox's `/__sandbox/<action>` endpoint (GET without payload, else POST) with the
    sandbox key (its client secret), which the endpoints that change state require."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        f"{url.rstrip('/')}/__sandbox/{action}",
        data=data,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
