"""The sandbox's HTTP face: routes for the OAuth token endpoint, REST, Bulk API 2.0 and the `/__sandbox/`
control endpoints, each turned into a call on the Sandbox and a Salesforce-shaped response."""

from __future__ import annotations

import json
import logging
import re
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

from local_stack.sandbox.salesforce.change_events import change_origin
from local_stack.sandbox.salesforce.composite import save_collection
from local_stack.sandbox.salesforce.errors import ApiError
from local_stack.sandbox.salesforce.rest import describe, describe_global
from local_stack.sandbox.salesforce.schema import OBJECTS, FieldSpec, ObjectSpec, find_object
from local_stack.sandbox.salesforce.seed import seed
from local_stack.sandbox.salesforce.soql import SoqlError

if TYPE_CHECKING:
    from local_stack.sandbox.salesforce.server import Sandbox

log = logging.getLogger(__name__)

_API = r"/services/data/(?P<v>v\d+\.\d)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p + r"/?$"), name)
    for m, p, name in [
        ("POST", r"/services/oauth2/token", "token"),
        ("GET", r"/services/data", "versions"),
        ("GET", _API, "resources"),
        ("GET", _API + r"/limits", "limits"),
        ("GET", _API + r"/sobjects", "describe_global"),
        ("GET", _API + r"/sobjects/(?P<obj>\w+)/describe", "describe"),
        ("GET", _API + r"/sobjects/(?P<obj>\w+)", "sobject_info"),
        ("POST", _API + r"/sobjects/(?P<obj>\w+)", "sobject_create"),
        ("GET", _API + r"/sobjects/(?P<obj>\w+)/(?P<id>\w{15,18})", "sobject_get"),
        ("PATCH", _API + r"/sobjects/(?P<obj>\w+)/(?P<id>\w{15,18})", "sobject_update"),
        ("DELETE", _API + r"/sobjects/(?P<obj>\w+)/(?P<id>\w{15,18})", "sobject_delete"),
        ("PATCH", _API + r"/sobjects/(?P<obj>\w+)/(?P<key>\w+)/(?P<value>[^/]+)", "sobject_upsert"),
        ("POST", _API + r"/composite/sobjects", "composite_create"),
        ("PATCH", _API + r"/composite/sobjects", "composite_update"),
        ("GET", _API + r"/query", "rest_query"),
        ("GET", _API + r"/queryAll", "rest_query_all"),
        ("GET", _API + r"/query/(?P<cursor>[\w-]+)", "rest_query_more"),
        ("POST", _API + r"/jobs/ingest", "ingest_create"),
        ("GET", _API + r"/jobs/ingest", "ingest_list"),
        ("GET", _API + r"/jobs/ingest/(?P<job>\w+)", "ingest_info"),
        ("PATCH", _API + r"/jobs/ingest/(?P<job>\w+)", "ingest_state"),
        ("DELETE", _API + r"/jobs/ingest/(?P<job>\w+)", "ingest_delete"),
        ("PUT", _API + r"/jobs/ingest/(?P<job>\w+)/batches", "ingest_upload"),
        (
            "GET",
            # Salesforce documents `unprocessedrecords`; clients also send `unprocessedRecords`
            # (simple-salesforce) and both work there.
            _API
            + r"/jobs/ingest/(?P<job>\w+)/(?P<kind>(?i:successfulResults|failedResults|unprocessedrecords))",
            "ingest_results",
        ),
        ("POST", _API + r"/jobs/query", "query_create"),
        ("GET", _API + r"/jobs/query/(?P<job>\w+)", "query_info"),
        ("PATCH", _API + r"/jobs/query/(?P<job>\w+)", "query_state"),
        ("GET", _API + r"/jobs/query/(?P<job>\w+)/results", "query_results"),
        ("GET", r"/__sandbox/health", "admin_health"),
        ("GET", r"/__sandbox/counters", "admin_counters"),
        ("GET", r"/__sandbox/stats", "admin_stats"),
        ("POST", r"/__sandbox/faults", "admin_faults"),
        ("POST", r"/__sandbox/reset", "admin_reset"),
        ("POST", r"/__sandbox/expire-sessions", "admin_expire"),
        ("POST", r"/__sandbox/seed", "admin_seed"),
        ("POST", r"/__sandbox/fields", "admin_add_field"),
    ]
]


# Control routes that change the org, its faults or its sessions: anyone on loopback could otherwise
# reset or fault a running sandbox. Health, counters and stats only read and stay open.
CONTROL_ROUTES = frozenset({"admin_faults", "admin_reset", "admin_expire", "admin_seed", "admin_add_field"})


def find_route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The route name and path parameters of a request, or None when nothing matches."""
    for route_method, pattern, name in ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return name, match.groupdict()
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SalesforceSandbox/1.0"
    # Headers and body go out as separate writes; with Nagle on, the body waits ~40 ms for the client's
    # delayed ACK on every keep-alive response.
    disable_nagle_algorithm = True
    sandbox: Sandbox  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parsed = urlparse(self.path)
        path = unquote(parsed.path)
        self.query_params = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.limit_info: str | None = None  # keep-alive: one handler serves many requests
        route = find_route(method, path)
        try:
            if route is None:
                raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {method} {path}")
            name, params = route
            self.sandbox.count(name)
            if path.startswith("/services/data/"):
                if self.sandbox.faults.hold(method, path):
                    self.close_connection = True  # dropped unanswered: its client is gone
                    return
                self._admit(path)
            elif name in CONTROL_ROUTES:
                self._check_sandbox_key()
            # Writes this request makes are one transaction whose change events name the API and the client.
            origin = change_origin("rest", params.get("v", ""), self.headers.get("Sforce-Call-Options"))
            try:
                with self.sandbox.org.events.writing_as(origin):
                    getattr(self, f"route_{name}")(**params)
            except SoqlError as exc:  # a REST or Bulk query that does not compile
                raise ApiError(400, exc.code, exc.message) from None
        except ApiError as exc:
            if route and route[0] == "token":
                self._json(exc.status, {"error": exc.code, "error_description": exc.message})
            else:
                self._json(exc.status, exc.body(), exc.headers)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:
            log.exception("sandbox error on %s %s", method, path)
            self._json(500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": str(exc)}])

    def _check_sandbox_key(self) -> None:
        """The sandbox key is its client secret, sent as `Authorization: Bearer <key>`."""
        if self.headers.get("Authorization") != f"Bearer {self.sandbox.auth.client_secret}":
            raise ApiError(
                401, "INVALID_SESSION_ID", "Control endpoints need 'Authorization: Bearer <sandbox key>'"
            )

    def _admit(self, path: str) -> None:
        """A data call: injected faults first, then the session and the API allowance."""
        fault = self.sandbox.faults.take_request_fault(path)
        if fault is not None:
            raise fault
        self.sandbox.auth.check_session(self.headers.get("Authorization"))
        self.limit_info = self.sandbox.auth.limit_info()

    # ------------------------------------------------------------ responses

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.limit_info:
            self.send_header("Sforce-Limit-Info", self.limit_info)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = b"" if status == 204 else json.dumps(payload).encode()
        self._send(status, body, "application/json;charset=UTF-8", headers)

    def _csv(self, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(200, text.encode("utf-8"), "text/csv", headers)

    def _json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.body or b"{}")
        except ValueError:
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        return body

    def _object(self, name: str) -> ObjectSpec:
        spec = find_object(name)
        if spec is None:
            raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{name}'")
        return spec

    # ------------------------------------------------------------ routes: auth and REST

    def route_token(self) -> None:
        form = {k: v[0] for k, v in parse_qs(self.body.decode("utf-8")).items()}
        self._json(200, self.sandbox.auth.issue_token(form, self.sandbox.url))

    def route_versions(self) -> None:
        self._json(200, [{"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}])

    def route_resources(self, v: str) -> None:
        self._json(
            200, {k: f"/services/data/{v}/{k}" for k in ("limits", "sobjects", "query", "queryAll", "jobs")}
        )

    def route_limits(self, v: str) -> None:
        self._json(200, self.sandbox.auth.limits())

    def route_describe_global(self, v: str) -> None:
        self._json(200, describe_global(v))

    def route_describe(self, v: str, obj: str) -> None:
        self._json(200, describe(self._object(obj), v))

    def route_sobject_info(self, v: str, obj: str) -> None:
        spec = self._object(obj)
        self._json(
            200, {"objectDescribe": {"name": spec.name, "keyPrefix": spec.key_prefix}, "recentItems": []}
        )

    def route_sobject_create(self, v: str, obj: str) -> None:
        outcome = self.sandbox.rest.write(self._object(obj), "insert", self._json_body())
        self._json(201, {"id": outcome.record_id, "success": True, "errors": []})

    def route_sobject_get(self, v: str, obj: str, id: str) -> None:
        self._json(200, self.sandbox.rest.read(self._object(obj), id, self.query_params.get("fields"), v))

    def route_sobject_update(self, v: str, obj: str, id: str) -> None:
        self.sandbox.rest.write(self._object(obj), "update", self._json_body(), record_id=id)
        self._json(204, None)

    def route_sobject_delete(self, v: str, obj: str, id: str) -> None:
        self.sandbox.rest.delete(self._object(obj), id)
        self._json(204, None)

    def route_sobject_upsert(self, v: str, obj: str, key: str, value: str) -> None:
        outcome = self.sandbox.rest.write(
            self._object(obj), "upsert", self._json_body(), external_id=(key, value)
        )
        if outcome.created:
            self._json(201, {"id": outcome.record_id, "success": True, "errors": [], "created": True})
        else:
            self._json(204, None)

    def route_composite_create(self, v: str) -> None:
        self._json(200, save_collection(self.sandbox.org, "insert", self._json_body()))

    def route_composite_update(self, v: str) -> None:
        self._json(200, save_collection(self.sandbox.org, "update", self._json_body()))

    def route_rest_query(self, v: str) -> None:
        self._json(200, self.sandbox.rest.query(self.query_params.get("q", ""), False, v))

    def route_rest_query_all(self, v: str) -> None:
        self._json(200, self.sandbox.rest.query(self.query_params.get("q", ""), True, v))

    def route_rest_query_more(self, v: str, cursor: str) -> None:
        self._json(200, self.sandbox.rest.query_more(cursor, v))

    # ------------------------------------------------------------ routes: Bulk 2.0

    def route_ingest_create(self, v: str) -> None:
        origin = change_origin("bulkapi", v, self.headers.get("Sforce-Call-Options"))
        self._json(200, self.sandbox.bulk.create_ingest_job(self._json_body(), v, origin))

    def route_ingest_list(self, v: str) -> None:
        self._json(200, {"done": True, "records": self.sandbox.bulk.ingest_jobs(), "nextRecordsUrl": None})

    def route_ingest_info(self, v: str, job: str) -> None:
        self._json(200, self.sandbox.bulk.ingest_job(job))

    def route_ingest_state(self, v: str, job: str) -> None:
        self._json(200, self.sandbox.bulk.change_state(job, str(self._json_body().get("state"))))

    def route_ingest_delete(self, v: str, job: str) -> None:
        self.sandbox.bulk.delete_ingest_job(job)
        self._json(204, None)

    def route_ingest_upload(self, v: str, job: str) -> None:
        if not (self.headers.get("Content-Type") or "").startswith("text/csv"):
            raise ApiError(400, "INVALIDJOB", "Upload Content-Type must be text/csv")
        self.sandbox.bulk.upload(job, self.body)
        self._send(201, b"", "text/plain")

    def route_ingest_results(self, v: str, job: str, kind: str) -> None:
        self._csv(self.sandbox.bulk.ingest_results(job, kind))

    def route_query_create(self, v: str) -> None:
        self._json(200, self.sandbox.bulk.create_query_job(self._json_body(), v))

    def route_query_info(self, v: str, job: str) -> None:
        self._json(200, dict(self.sandbox.bulk.query_job(job).info))

    def route_query_state(self, v: str, job: str) -> None:
        query_job = self.sandbox.bulk.query_job(job)  # an unknown job is a 404 whatever the body
        self._json(200, self.sandbox.bulk.change_query_state(query_job, self._json_body().get("state")))

    def route_query_results(self, v: str, job: str) -> None:
        max_records = self.query_params.get("maxRecords")
        text, locator, count = self.sandbox.bulk.query_results(
            job, self.query_params.get("locator") or None, int(max_records) if max_records else None
        )
        self._csv(text, {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(count)})

    # ------------------------------------------------------------ routes: control

    def route_admin_health(self) -> None:
        self._json(200, {"status": "ok", "url": self.sandbox.url})

    def route_admin_counters(self) -> None:
        self._json(
            200, {"endpoints": self.sandbox.endpoint_counts(), "api_requests": self.sandbox.auth.api_requests}
        )

    def route_admin_stats(self) -> None:
        self._json(200, {name: self.sandbox.org.count(name) for name in OBJECTS})

    def route_admin_faults(self) -> None:
        try:
            self.sandbox.faults.update(**self._json_body())
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "INVALID_FAULT", str(exc)) from None
        self._json(200, self.sandbox.faults.to_dict())

    def route_admin_reset(self) -> None:
        self.sandbox.faults.reset()
        self.sandbox.reset_counts()
        self._json(200, self.sandbox.faults.to_dict())

    def route_admin_expire(self) -> None:
        self.sandbox.auth.expire_sessions()
        self._json(200, {"expired": True})

    def route_admin_seed(self) -> None:
        body = json.loads(self.body or b"{}")
        self._json(200, seed(self.sandbox.org, body))

    def route_admin_add_field(self) -> None:
        """{"object": "Case", "name": "Severity__c", "type": "picklist", …FieldSpec's other keys}."""
        body = self._json_body()
        try:
            object_name = str(body.pop("object"))
            if "reference_to" in body:
                body["reference_to"] = tuple(body["reference_to"])
            spec = self.sandbox.org.add_field(object_name, FieldSpec(**body))
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(400, "INVALID_FIELD", f"Cannot add the field: {exc}") from None
        self._json(200, describe(spec, "v62.0"))
