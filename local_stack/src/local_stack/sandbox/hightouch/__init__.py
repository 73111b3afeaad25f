"""A local Hightouch: a real HTTP server on loopback speaking the v1 REST API, whose runs read the local
DuckDB warehouse and plan real differences. Start it with `python -m local_stack.sandbox.hightouch`
or, in tests, `start_sandbox(...)`, which also hands back controls (faults, 429 bursts, deliveries).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from local_stack.sandbox.hightouch.engine import Fault, FaultMode, SyncEngine
from local_stack.sandbox.hightouch.server import SandboxServer
from platform_assets import environment

DEFAULT_SYNCS_DIR = environment.PROJECT_ROOT / "platform_assets/defs/activation/hightouch/syncs"
# The Hightouch syncs workflow steps trigger (docs/workflows.md); the CLI seeds them too.
WORKFLOW_SYNCS_DIR = environment.PROJECT_ROOT / "platform_assets/defs/workflows/syncs/hightouch"

__all__ = ["DEFAULT_SYNCS_DIR", "WORKFLOW_SYNCS_DIR", "HightouchSandbox", "start_sandbox"]


class HightouchSandbox:
    """A running sandbox: its URLs, and the controls tests use to steer and inspect it."""

    def __init__(self, server: SandboxServer, thread: threading.Thread):
        self._server = server
        self._thread = thread
        self.engine: SyncEngine = server.engine

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base_url(self) -> str:
        return f"{self.url}/api/v1"

    @property
    def api_key(self) -> str:
        return self._server.api_key

    def stop(self) -> None:
        self.engine.stop()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.engine.state.close()

    def __enter__(self) -> HightouchSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- steering -----------------------------------------------------------------------------------

    def sync_id(self, sync: str | int) -> int:
        """The id of a sync given by id or slug."""
        found = self.engine.find_sync(sync)
        if not found:
            raise KeyError(f"The Hightouch sandbox has no sync '{sync}'")
        return int(found["id"])

    def fault_next_run(
        self, sync: str | int, mode: FaultMode, message: str | None = None, failed_rows: int = 1
    ):
        """The next run of `sync` fails, warns (rejecting `failed_rows`), stalls, is cancelled/interrupted."""
        self.engine.add_fault(self.sync_id(sync), Fault(mode=mode, message=message, failed_rows=failed_rows))

    def release(self, sync: str | int) -> None:
        """Let a stalled run of `sync` go on."""
        self.engine.release(self.sync_id(sync))

    def rate_limit_next(self, count: int, retry_after: float = 0.0) -> None:
        """Answer the next `count` API requests with 429 Too Many Requests."""
        self._server.rate_limiter.arm(count, retry_after)

    @property
    def refused_requests(self) -> int:
        """How many requests got a 429 so far."""
        return self._server.rate_limiter.refused

    # -- inspecting ---------------------------------------------------------------------------------

    def runs(self, sync: str | int) -> list[dict[str, Any]]:
        return self.engine.state.query(
            "SELECT * FROM runs WHERE sync_id = ? ORDER BY id", (self.sync_id(sync),)
        )

    def run_statuses(self, run_id: int | str) -> list[str]:
        """Every status the run went through, in order."""
        rows = self.engine.state.query(
            "SELECT status FROM run_events WHERE run_id = ? ORDER BY rowid", (int(run_id),)
        )
        return [row["status"] for row in rows]

    def deliveries(self, sync: str | int, run_id: int | str | None = None) -> list[dict[str, Any]]:
        """What runs of `sync` delivered: run_id, destination_id, record_key, operation, payload."""
        sql, params = "SELECT * FROM deliveries WHERE sync_id = ?", [self.sync_id(sync)]
        if run_id is not None:
            sql, params = sql + " AND run_id = ?", [*params, int(run_id)]
        rows = self.engine.state.query(sql + " ORDER BY run_id, record_key", params)
        return [{**row, "payload": json.loads(row["payload"]) if row["payload"] else None} for row in rows]

    def destination_records(self, sync: str | int) -> dict[str, dict[str, Any]]:
        """What the destination holds for `sync` now, by record key."""
        rows = self.engine.state.query(
            "SELECT record_key, payload FROM records WHERE sync_id = ?", (self.sync_id(sync),)
        )
        return {row["record_key"]: json.loads(row["payload"]) for row in rows}


def start_sandbox(
    *,
    state_db: Path,
    warehouse: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    syncs_dir: Path = DEFAULT_SYNCS_DIR,
    also_syncs_dirs: Sequence[Path] = (),
    api_key: str = environment.SANDBOX_HIGHTOUCH_API_KEY,
    step_seconds: float = 0.2,
) -> HightouchSandbox:
    """Serve the sandbox on a background thread (port 0: any free port); seeded from `syncs_dir` and
    `also_syncs_dirs`."""
    from local_stack.sandbox.hightouch.state import SandboxState

    engine = SyncEngine(SandboxState(state_db), warehouse, step_seconds=step_seconds)
    for folder in (syncs_dir, *also_syncs_dirs):
        engine.seed(folder)
    server = SandboxServer((host, port), engine, api_key, syncs_dir)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="hightouch-sandbox", daemon=True
    )
    thread.start()
    return HightouchSandbox(server, thread)
