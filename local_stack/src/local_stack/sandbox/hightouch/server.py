"""The sandbox's HTTP side: the part of Hightouch's REST API v1 the platform and dagster-hightouch use.

API (bearer key required):  GET /api/v1/syncs[?slug&modelId&limit&offset], GET /api/v1/syncs/{id},
  POST /api/v1/syncs/{id}/trigger {fullResync}, POST /api/v1/syncs/trigger {syncId|syncSlug, fullResync},
  GET /api/v1/syncs/{id}/runs[?runId&limit&offset], GET /api/v1/destinations[/{id}], GET /api/v1/models[/{id}]
Controls (bearer key required): POST /__sandbox/faults {sync, mode, message, failed_rows},
  POST /__sandbox/release {sync}, POST /__sandbox/rate-limit {count, retry_after},
  GET /__sandbox/deliveries?sync=&run=, GET /__sandbox/records?sync=, POST /__sandbox/reload
Open: GET /health, GET /syncs/{id}/runs/{run id} (a small run page: the "link to the run").
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local_stack.sandbox.hightouch.engine import FAULT_MODES, Fault, SyncEngine
from local_stack.sandbox.hightouch.state import RUN_COLUMNS

_log = logging.getLogger(__name__)
API = "/api/v1"


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers or {}


class RateLimiter:
    """Answers the next `count` API requests with 429 (a test's burst), counting what it refused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._remaining = 0
        self._retry_after = 0.0
        self.refused = 0

    def arm(self, count: int, retry_after: float) -> None:
        with self._lock:
            self._remaining, self._retry_after = count, retry_after

    def check(self) -> None:
        with self._lock:
            if self._remaining <= 0:
                return
            self._remaining -= 1
            self.refused += 1
            retry_after = self._retry_after
        raise ApiError(
            429, "Too many requests: rate limit exceeded", headers={"Retry-After": f"{retry_after:g}"}
        )


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], engine: SyncEngine, api_key: str, syncs_dir: Path):
        super().__init__(address, SandboxHandler)
        self.engine = engine
        self.api_key = api_key
        self.syncs_dir = syncs_dir
        self.rate_limiter = RateLimiter()


Route = tuple[str, re.Pattern[str], str]
ROUTES: list[Route] = [
    ("GET", re.compile(rf"^{API}/syncs$"), "list_syncs"),
    ("POST", re.compile(rf"^{API}/syncs/trigger$"), "trigger_by_reference"),
    ("GET", re.compile(rf"^{API}/syncs/(?P<sync_id>[^/]+)$"), "get_sync"),
    ("POST", re.compile(rf"^{API}/syncs/(?P<sync_id>[^/]+)/trigger$"), "trigger_by_id"),
    ("GET", re.compile(rf"^{API}/syncs/(?P<sync_id>[^/]+)/runs$"), "list_runs"),
    ("GET", re.compile(rf"^{API}/destinations$"), "list_destinations"),
    ("GET", re.compile(rf"^{API}/destinations/(?P<destination_id>[^/]+)$"), "get_destination"),
    ("GET", re.compile(rf"^{API}/models$"), "list_models"),
    ("GET", re.compile(rf"^{API}/models/(?P<model_id>[^/]+)$"), "get_model"),
    ("POST", re.compile(r"^/__sandbox/faults$"), "add_fault"),
    ("POST", re.compile(r"^/__sandbox/release$"), "release"),
    ("POST", re.compile(r"^/__sandbox/rate-limit$"), "rate_limit"),
    ("GET", re.compile(r"^/__sandbox/deliveries$"), "deliveries"),
    ("GET", re.compile(r"^/__sandbox/records$"), "records"),
    ("POST", re.compile(r"^/__sandbox/reload$"), "reload"),
]


class SandboxHandler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle on, the body waits ~40 ms for the client's
    # delayed ACK on every keep-alive response.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - %s", self.address_string(), format % args)

    # -- plumbing -----------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            raw_body = self._read_body()
            if url.path == "/health":
                return self._json(200, {"status": "ok", "syncs": len(self._all_syncs())})
            page = re.match(r"^/syncs/(\d+)/runs/(\d+)$", url.path)
            if page and method == "GET":
                return self._run_page(int(page.group(1)), int(page.group(2)))
            self._authenticate()
            if url.path.startswith(API):
                self.server.rate_limiter.check()
            handler, params = self._route(method, url.path)
            status, payload = handler(body=_parse_json(raw_body), **params)
            self._json(status, payload)
        except ApiError as error:
            payload = {"message": error.message}
            if error.details is not None:
                payload["details"] = error.details
            self._json(error.status, payload, error.headers)

    def _route(self, method: str, path: str) -> tuple[Callable[..., tuple[int, Any]], dict[str, str]]:
        allowed = False
        for route_method, pattern, name in ROUTES:
            match = pattern.match(path)
            if match:
                if route_method == method:
                    return getattr(self, name), match.groupdict()
                allowed = True
        if allowed:
            raise ApiError(405, f"Method {method} not allowed on {path}")
        raise ApiError(404, f"Not found: {path}")

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization", "")
        if header != f"Bearer {self.server.api_key}":
            raise ApiError(401, "Unauthorized: send 'Authorization: Bearer <API key>' with a valid key")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    # -- helpers ------------------------------------------------------------------------------------

    @property
    def engine(self) -> SyncEngine:
        return self.server.engine

    def _all_syncs(self) -> list[dict[str, Any]]:
        return self.engine.state.query(
            "SELECT s.*, m.primary_key, m.table_name, m.schema_name, d.type AS destination_type "
            "FROM syncs s JOIN models m ON m.id = s.model_id JOIN destinations d ON d.id = s.destination_id "
            "ORDER BY s.id"
        )

    def _sync_row(self, reference: str) -> dict[str, Any]:
        sync = self.engine.find_sync(reference)
        if not sync:
            raise ApiError(404, f"Sync {reference} not found")
        return next(row for row in self._all_syncs() if row["id"] == sync["id"])

    def _int_query(self, name: str, default: int) -> int:
        value = self.query.get(name)
        if value is None:
            return default
        if not value.isdigit():
            raise ApiError(422, "Validation failed", {name: "must be a non-negative integer"})
        return int(value)

    def _page(self, items: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        limit, offset = self._int_query("limit", 100), self._int_query("offset", 0)
        return 200, {"data": items[offset : offset + limit], "hasMore": len(items) > offset + limit}

    @staticmethod
    def _object(body: Any) -> dict[str, Any]:
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise ApiError(422, "Validation failed", {"body": "must be a JSON object"})
        return body

    @staticmethod
    def _full_resync(body: dict[str, Any]) -> bool:
        value = body.get("fullResync", False)
        if not isinstance(value, bool):
            raise ApiError(422, "Validation failed", {"fullResync": "must be a boolean"})
        return value

    # -- the API ------------------------------------------------------------------------------------

    def list_syncs(self, body: Any) -> tuple[int, Any]:
        syncs = [_sync_json(row) for row in self._all_syncs()]
        if "slug" in self.query:
            syncs = [sync for sync in syncs if sync["slug"] == self.query["slug"]]
        if "modelId" in self.query:
            syncs = [sync for sync in syncs if sync["modelId"] == self.query["modelId"]]
        return self._page(syncs)

    def get_sync(self, body: Any, sync_id: str) -> tuple[int, Any]:
        if not sync_id.isdigit():
            raise ApiError(404, f"Sync {sync_id} not found")
        return 200, _sync_json(self._sync_row(sync_id))

    def trigger_by_id(self, body: Any, sync_id: str) -> tuple[int, Any]:
        if not sync_id.isdigit():
            raise ApiError(404, f"Sync {sync_id} not found")
        sync = self._sync_row(sync_id)
        full_resync = self._full_resync(self._object(body))
        return 200, {"id": str(self.engine.trigger(sync["id"], full_resync))}

    def trigger_by_reference(self, body: Any) -> tuple[int, Any]:
        request = self._object(body)
        sync_id, slug = request.get("syncId"), request.get("syncSlug")
        if (sync_id is None) == (slug is None):
            raise ApiError(422, "Validation failed", {"body": "give exactly one of syncId or syncSlug"})
        if slug is not None and not isinstance(slug, str):
            raise ApiError(422, "Validation failed", {"syncSlug": "must be a string"})
        full_resync = self._full_resync(request)
        if slug is not None:
            sync = self.engine.state.query_one("SELECT id FROM syncs WHERE slug = ?", (slug,))
            if not sync:
                raise ApiError(404, f"Sync with slug {slug} not found")
        else:
            sync = self._sync_row(str(sync_id)) if str(sync_id).isdigit() else None
            if not sync:
                raise ApiError(404, f"Sync {sync_id} not found")
        return 200, {"id": str(self.engine.trigger(sync["id"], full_resync))}

    def list_runs(self, body: Any, sync_id: str) -> tuple[int, Any]:
        if not sync_id.isdigit():
            raise ApiError(404, f"Sync {sync_id} not found")
        sync = self._sync_row(sync_id)
        sql, params = f"SELECT {RUN_COLUMNS} FROM runs WHERE sync_id = ?", [sync["id"]]
        if "runId" in self.query:
            sql, params = sql + " AND id = ?", [*params, self._int_query("runId", 0)]
        runs = self.engine.state.query(sql + " ORDER BY id DESC", params)
        return self._page([_run_json(run) for run in runs])

    def list_destinations(self, body: Any) -> tuple[int, Any]:
        rows = self.engine.state.query("SELECT * FROM destinations ORDER BY id")
        return self._page([_destination_json(row) for row in rows])

    def get_destination(self, body: Any, destination_id: str) -> tuple[int, Any]:
        row = self.engine.state.query_one(
            "SELECT * FROM destinations WHERE CAST(id AS TEXT) = ?", (destination_id,)
        )
        if not row:
            raise ApiError(404, f"Destination {destination_id} not found")
        return 200, _destination_json(row)

    def list_models(self, body: Any) -> tuple[int, Any]:
        return self._page(
            [_model_json(row) for row in self.engine.state.query("SELECT * FROM models ORDER BY id")]
        )

    def get_model(self, body: Any, model_id: str) -> tuple[int, Any]:
        row = self.engine.state.query_one("SELECT * FROM models WHERE CAST(id AS TEXT) = ?", (model_id,))
        if not row:
            raise ApiError(404, f"Model {model_id} not found")
        return 200, _model_json(row)

    # -- controls -----------------------------------------------------------------------------------

    def add_fault(self, body: Any) -> tuple[int, Any]:
        request = self._object(body)
        sync = self._sync_row(str(request.get("sync", "")))
        mode = request.get("mode")
        if mode not in FAULT_MODES:
            raise ApiError(422, "Validation failed", {"mode": f"must be one of {', '.join(FAULT_MODES)}"})
        failed_rows = request.get("failed_rows", 1)
        if not isinstance(failed_rows, int) or failed_rows < 0:
            raise ApiError(422, "Validation failed", {"failed_rows": "must be a non-negative integer"})
        self.engine.add_fault(
            sync["id"], Fault(mode=mode, message=request.get("message"), failed_rows=failed_rows)
        )
        return 200, {"sync": sync["id"], "mode": mode}

    def release(self, body: Any) -> tuple[int, Any]:
        sync = self._sync_row(str(self._object(body).get("sync", "")))
        self.engine.release(sync["id"])
        return 200, {"sync": sync["id"], "released": True}

    def rate_limit(self, body: Any) -> tuple[int, Any]:
        request = self._object(body)
        count, retry_after = request.get("count"), request.get("retry_after", 0)
        if not isinstance(count, int) or count < 0 or not isinstance(retry_after, int | float):
            raise ApiError(
                422, "Validation failed", {"count": "non-negative integer", "retry_after": "seconds"}
            )
        self.server.rate_limiter.arm(count, float(retry_after))
        return 200, {"count": count, "retry_after": retry_after}

    def deliveries(self, body: Any) -> tuple[int, Any]:
        sync = self._sync_row(self.query.get("sync", ""))
        sql, params = "SELECT * FROM deliveries WHERE sync_id = ?", [sync["id"]]
        if "run" in self.query:
            sql, params = sql + " AND run_id = ?", [*params, self._int_query("run", 0)]
        return 200, {"data": self.engine.state.query(sql + " ORDER BY run_id, record_key", params)}

    def records(self, body: Any) -> tuple[int, Any]:
        sync = self._sync_row(self.query.get("sync", ""))
        rows = self.engine.state.query(
            "SELECT record_key, payload FROM records WHERE sync_id = ? ORDER BY record_key", (sync["id"],)
        )
        return 200, {"data": [{"key": row["record_key"], **json.loads(row["payload"])} for row in rows]}

    def reload(self, body: Any) -> tuple[int, Any]:
        return 200, {"syncs": self.engine.seed(self.server.syncs_dir)}

    # -- the run page -------------------------------------------------------------------------------

    def _run_page(self, sync_id: int, run_id: int) -> None:
        run = self.engine.state.run(run_id)
        if not run or run["sync_id"] != sync_id:
            raise ApiError(404, f"Run {run_id} of sync {sync_id} not found")
        cells = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>"
            for name, value in run.items()
        )
        page = f"<html><body><h1>Hightouch sandbox: sync {sync_id}, run {run_id}</h1><table>{cells}</table>"
        data = (page + "</body></html>").encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(422, "Request body is not valid JSON") from None


def _sync_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "slug": row["slug"],
        "workspaceId": "1",
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "destinationId": str(row["destination_id"]),
        "modelId": str(row["model_id"]),
        "configuration": {"mode": "mirror", "object": row["table_name"]},
        "schedule": None,
        "status": "enabled",
        "disabled": False,
        "primaryKey": row["primary_key"],
        "referencedColumns": [],
    }


def _run_json(run: dict[str, Any]) -> dict[str, Any]:
    def counts(kind: str) -> dict[str, int]:
        return {
            "addedCount": run[f"{kind}_added"],
            "changedCount": run[f"{kind}_changed"],
            "removedCount": run[f"{kind}_removed"],
        }

    return {
        "id": str(run["id"]),
        "createdAt": run["created_at"],
        "startedAt": run["started_at"],
        "finishedAt": run["finished_at"],
        "querySize": run["query_size"],
        "status": run["status"],
        "completionRatio": run["completion_ratio"],
        "plannedRows": counts("planned"),
        "successfulRows": counts("successful"),
        "failedRows": counts("failed"),
        "error": run["error"],
    }


def _destination_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "slug": row["slug"],
        "type": row["type"],
        "workspaceId": "1",
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "configuration": {},
    }


def _model_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "slug": row["slug"],
        "primaryKey": row["primary_key"],
        "queryType": "table",
        "table": {"name": f"{row['schema_name']}.{row['table_name']}"},
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
