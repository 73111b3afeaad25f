"""A real Dagster instance (SQLite, temporary) and the real DuckDB warehouse of a temporary platform."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest

from platform_assets import environment
from platform_assets.warehouse import DuckDBWarehouse


@pytest.fixture
def warehouse(local_platform: environment.PlatformEnvironment) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(local_platform.duckdb_path))


@pytest.fixture
def instance(local_platform: environment.PlatformEnvironment) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(local_platform.dagster_home)) as test_instance:
        yield test_instance


def sql(warehouse: DuckDBWarehouse, *statements: str) -> list[tuple]:
    """Run statements against the warehouse; the rows of the last one."""
    rows: list[tuple] = []
    with warehouse.session() as session:
        for statement in statements:
            rows = session.fetchall(statement)
    return rows


@dataclass
class Receiver:
    """A loopback HTTP server recording every request (path, JSON body); paths under /fail/ answer 500."""

    url: str = ""
    received: list[tuple[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.received.append((self.path, json.loads(body) if body else None))
            self.send_response(500 if self.path.startswith("/fail/") else 200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
