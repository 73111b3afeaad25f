"""The sandbox's wiring: one org with its sessions, REST cursors, Bulk jobs, faults and call counters
(`Sandbox`), served over HTTP or HTTPS on a bound port (`make_server`)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from local_stack.sandbox.salesforce.auth import DEFAULT_DAILY_API_LIMIT, Auth
from local_stack.sandbox.salesforce.bulk import BulkJobs
from local_stack.sandbox.salesforce.faults import Faults
from local_stack.sandbox.salesforce.handler import Handler
from local_stack.sandbox.salesforce.rest import RestApi
from local_stack.sandbox.salesforce.store import Org
from local_stack.sandbox.salesforce.tls import server_context


class Sandbox:
    """State shared by the request handlers and the Bulk job worker."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        client_id: str,
        client_secret: str,
        jwt_public_keys: dict[str, str] | None = None,
        daily_api_limit: int = DEFAULT_DAILY_API_LIMIT,
    ) -> None:
        self.org = Org(db_path)
        self.url = ""  # set by make_server once the port is bound
        self.faults = Faults()
        self.auth = Auth(
            self.org,
            client_id=client_id,
            client_secret=client_secret,
            jwt_public_keys=jwt_public_keys,
            daily_api_limit=daily_api_limit,
        )
        self.rest = RestApi(self.org)
        # API usage is saved with every applied ingest job, not only on close.
        self.bulk = BulkJobs(self.org, self.faults, on_ingest_done=self.auth.save_usage)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def count(self, endpoint: str) -> None:
        with self._lock:
            self._counts[endpoint] = self._counts.get(endpoint, 0) + 1

    def endpoint_counts(self) -> dict[str, int]:
        """Calls per route name since start or the last reset."""
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def close(self) -> None:
        self.bulk.close()
        self.auth.save_usage()
        self.org.close()


def make_server(sandbox: Sandbox, host: str, port: int, tls_dir: Path | None = None) -> ThreadingHTTPServer:
    """A server for `sandbox` on host:port (0 = any free port); https with a certificate in `tls_dir`."""
    handler = type("BoundHandler", (Handler,), {"sandbox": sandbox})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    scheme = "http"
    if tls_dir is not None:
        server.socket = server_context(tls_dir).wrap_socket(server.socket, server_side=True)
        scheme = "https"
    sandbox.url = f"{scheme}://{host}:{server.server_address[1]}"
    return server
