"""The sandbox's HTTP server: OAuth token endpoint, REST (describe, limits, query, sObject rows), Bulk API 2.0
ingest and query jobs, and `/__sandbox/...` admin endpoints for fault injection and counters.

Bulk jobs are processed by one background worker, like Salesforce's queue: a job moves
Open → UploadComplete → InProgress → JobComplete | Failed | Aborted while clients poll.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from local_stack.sandbox.salesforce.auth import DEFAULT_DAILY_API_LIMIT, Auth
from local_stack.sandbox.salesforce.errors import ApiError
from local_stack.sandbox.salesforce.faults import Faults
from local_stack.sandbox.salesforce.schema import (
    INTEGRATION_USER_ID,
    OBJECTS,
    ObjectSpec,
    find_object,
    normalize_id,
)
from local_stack.sandbox.salesforce.seed import seed
from local_stack.sandbox.salesforce.soql import CompiledQuery, SoqlError, compile_soql
from local_stack.sandbox.salesforce.store import Org, Outcome, RecordError, format_number
from local_stack.sandbox.salesforce.tls import server_context

log = logging.getLogger(__name__)

DEFAULT_QUERY_PAGE = 50_000
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
NULL_VALUE = "#N/A"


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


@dataclass
class QueryJob:
    info: dict[str, Any]
    compiled: CompiledQuery
    include_deleted: bool
    rows: list[tuple] = field(default_factory=list)


class Sandbox:
    """State shared by the request handlers and the job worker."""

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
        self.url = ""
        self.lock = threading.RLock()
        self.faults = Faults()
        self.auth = Auth(
            self.org,
            client_id=client_id,
            client_secret=client_secret,
            jwt_public_keys=jwt_public_keys,
            daily_api_limit=daily_api_limit,
        )
        self.counters: dict[str, int] = {}
        self.query_jobs: dict[str, QueryJob] = {}
        self.cursors: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self.work: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.worker = threading.Thread(target=self._work, name="salesforce-sandbox-jobs", daemon=True)
        self.worker.start()
        # Jobs closed before a restart were never processed: pick them up again.
        for info in self.org.jobs_in_state("UploadComplete", "InProgress"):
            self.work.put(("ingest", info["id"]))

    # ------------------------------------------------------------ bookkeeping

    def count(self, endpoint: str) -> None:
        with self.lock:
            self.counters[endpoint] = self.counters.get(endpoint, 0) + 1

    def new_job_id(self) -> str:
        with self.org.lock:
            return self.org.allocate_ids("750", 1)[0]

    def close(self) -> None:
        self.work.put(None)
        self.worker.join(timeout=10)
        self.auth.save_usage()
        self.org.close()

    # ------------------------------------------------------------ ingest jobs

    def create_ingest_job(self, spec: dict[str, Any], api_version: str) -> dict[str, Any]:
        sobject = find_object(str(spec.get("object", "")))
        operation = spec.get("operation")
        if sobject is None:
            raise ApiError(400, "NOT_FOUND", f"sObject type '{spec.get('object')}' is not supported.")
        if operation not in ("insert", "update", "upsert", "delete", "hardDelete"):
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        if spec.get("contentType", "CSV") != "CSV":
            raise ApiError(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
        delimiter = spec.get("columnDelimiter", "COMMA")
        if delimiter not in DELIMITERS:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid column delimiter: {delimiter}")
        external_id = None
        if operation == "upsert":
            requested = str(spec.get("externalIdFieldName") or "")
            key = sobject.field(requested)
            if key is None or not (key.external_id or key.name == "Id"):
                raise ApiError(
                    400,
                    "INVALIDJOB",
                    f"InvalidJob : Field name provided, {requested} does not match "
                    f"an External ID, Salesforce Id, or indexed field for {sobject.name}",
                )
            external_id = key.name
        now = _now()
        info = {
            "id": self.new_job_id(),
            "operation": operation,
            "object": sobject.name,
            "createdById": INTEGRATION_USER_ID,
            "createdDate": now,
            "systemModstamp": now,
            "state": "Open",
            "externalIdFieldName": external_id,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(api_version.lstrip("v")),
            "jobType": "V2Ingest",
            "contentUrl": f"services/data/{api_version}/jobs/ingest/{{id}}/batches",
            "lineEnding": spec.get("lineEnding", "LF"),
            "columnDelimiter": delimiter,
            "numberRecordsProcessed": 0,
            "numberRecordsFailed": 0,
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        }
        info["contentUrl"] = info["contentUrl"].replace("{id}", info["id"])
        if external_id is None:
            info.pop("externalIdFieldName")
        self.org.save_job(info)
        return info

    def ingest_job(self, job_id: str) -> dict[str, Any]:
        info = self.org.load_job(job_id)
        if info is None:
            raise ApiError(404, "NOT_FOUND", f"Job {job_id} not found")
        return info

    def upload(self, job_id: str, body: bytes) -> None:
        info = self.ingest_job(job_id)
        if info["state"] != "Open" or self.org.job_blob(job_id, "upload") is not None:
            raise ApiError(
                409,
                "INVALIDJOBSTATE",
                f"Job {job_id} is {info['state']} and already has its data; "
                "Bulk API 2.0 takes one upload per job.",
            )
        if not body.strip():
            raise ApiError(400, "INVALIDJOB", "InvalidJob : the upload is empty")
        self.org.save_job(info, upload=body)

    def change_state(self, job_id: str, state: str) -> dict[str, Any]:
        info = self.ingest_job(job_id)
        if state == "UploadComplete" and info["state"] == "Open":
            if self.org.job_blob(job_id, "upload") is None:
                info.update(state="Failed", errorMessage="InvalidBatch : No data uploaded for this job")
            else:
                info["state"] = "UploadComplete"
                self.work.put(("ingest", job_id))
        elif state == "Aborted" and info["state"] in ("Open", "UploadComplete"):
            info["state"] = "Aborted"
        else:
            raise ApiError(
                400, "INVALIDJOBSTATE", f"Cannot move job {job_id} from {info['state']} to {state}"
            )
        info["systemModstamp"] = _now()
        self.org.save_job(info)
        return info

    def _work(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            kind, job_id = item
            try:
                if kind == "ingest":
                    self._process_ingest(job_id)
                else:
                    self._process_query(job_id)
            except Exception as exc:  # a sandbox bug must show as a Failed job, not a hung poll
                log.exception("sandbox job %s crashed", job_id)
                self._fail(kind, job_id, f"InternalServerError : {exc}")

    def _fail(self, kind: str, job_id: str, message: str) -> None:
        if kind == "query":
            with self.lock:
                job = self.query_jobs.get(job_id)
                if job:
                    job.info.update(state="Failed", errorMessage=message)
            return
        info = self.ingest_job(job_id)
        info.update(state="Failed", errorMessage=message, systemModstamp=_now())
        self.org.save_job(info, unprocessed=(self.org.job_blob(job_id, "upload") or b"").decode("utf-8"))

    def _process_ingest(self, job_id: str) -> None:
        info = self.ingest_job(job_id)
        if info["state"] not in ("UploadComplete", "InProgress"):
            return
        info["state"] = "InProgress"
        self.org.save_job(info)
        started = time.monotonic()
        self.faults.hold_job()
        message = self.faults.take_job_failure()
        if message is not None:
            self._fail("ingest", job_id, message)
            return
        # One job is applied as a unit: its records, results and JobComplete become visible together (a
        # request that reads the org meanwhile waits), never records applied under a job still InProgress.
        with self.org.lock:
            self._apply_job(job_id, info, started)

    def _apply_job(self, job_id: str, info: dict[str, Any], started: float) -> None:
        sobject = OBJECTS[info["object"]]
        upload = (self.org.job_blob(job_id, "upload") or b"").decode("utf-8-sig")
        reader = csv.reader(io.StringIO(upload, newline=""), delimiter=DELIMITERS[info["columnDelimiter"]])
        header = next(reader, [])
        rows = [r for r in reader if any(cell != "" for cell in r)]
        try:
            columns = self._map_header(sobject, info["operation"], header)
        except ApiError as exc:
            self._fail("ingest", job_id, exc.message)
            return
        outcomes = self._apply_rows(sobject, info, columns, rows)
        successful, failed = io.StringIO(), io.StringIO()
        ok_writer = csv.writer(successful, quoting=csv.QUOTE_ALL, lineterminator="\n")
        bad_writer = csv.writer(failed, quoting=csv.QUOTE_ALL, lineterminator="\n")
        ok_writer.writerow(["sf__Id", "sf__Created", *header])
        bad_writer.writerow(["sf__Id", "sf__Error", *header])
        for row, outcome in zip(rows, outcomes, strict=True):
            if outcome.error is None:
                ok_writer.writerow([outcome.record_id, "true" if outcome.created else "false", *row])
            else:
                bad_writer.writerow([outcome.record_id, str(outcome.error), *row])
        elapsed = int((time.monotonic() - started) * 1000)
        info.update(
            state="JobComplete",
            numberRecordsProcessed=len(rows),
            numberRecordsFailed=sum(1 for o in outcomes if o.error is not None),
            totalProcessingTime=elapsed,
            apiActiveProcessingTime=elapsed,
            systemModstamp=_now(),
        )
        self.org.save_job(
            info, successful=successful.getvalue(), failed=failed.getvalue(), unprocessed=header_only(header)
        )
        self.auth.save_usage()

    @staticmethod
    def _map_header(sobject: ObjectSpec, operation: str, header: list[str]) -> list[tuple[str, str | None]]:
        """CSV header -> (field, related External ID field or None); an unknown column fails the job."""
        columns: list[tuple[str, str | None]] = []
        for name in header:
            relation, _, related_field = name.strip().partition(".")
            if related_field:
                ref = next(
                    (
                        f
                        for f in sobject.fields
                        if f.relationship_name and f.relationship_name.lower() == relation.lower()
                    ),
                    None,
                )
                target = OBJECTS.get(ref.reference_to[0]) if ref and len(ref.reference_to) == 1 else None
                key = target.field(related_field) if target else None
                if key is None or not key.external_id:
                    raise ApiError(400, "InvalidBatch", f"InvalidBatch : Field name not found : {name}")
                columns.append((ref.name, key.name))
                continue
            spec = sobject.field(name.strip())
            if spec is None:
                raise ApiError(400, "InvalidBatch", f"InvalidBatch : Field name not found : {name}")
            columns.append((spec.name, None))
        if operation in ("delete", "hardDelete") and [c for c, _ in columns] != ["Id"]:
            raise ApiError(400, "InvalidBatch", "InvalidBatch : The 'delete' batch must contain only 'Id'")
        return columns

    def _apply_rows(
        self,
        sobject: ObjectSpec,
        info: dict[str, Any],
        columns: list[tuple[str, str | None]],
        rows: list[list[str]],
    ) -> list[Outcome]:
        names = [name for name, _ in columns]
        # Bulk API: an empty cell leaves the field as it is; #N/A sets it to null.
        records = [
            {n: None if v == NULL_VALUE else v for n, v in zip(names, row, strict=False) if v != ""}
            for row in rows
        ]
        pre_errors: dict[int, RecordError] = {}
        related = [(name, key) for name, key in columns if key]
        if related:  # `Account.Workspace_Id__c` columns: External ID values become record Ids
            lookups = {(n, k): {r[n] for r in records if r.get(n) is not None} for n, k in related}
            resolved = self._resolve_related(sobject, lookups)
            for index, record in enumerate(records):
                for name, key_field in related:
                    key = record.get(name)
                    if key is None:
                        continue
                    record[name] = resolved[(name, key_field)].get(key)
                    if record[name] is None:
                        pre_errors[index] = RecordError(
                            "INVALID_FIELD",
                            f"Foreign key external ID: {key} not found for field {key_field} in "
                            f"entity {OBJECTS[sobject.field(name).reference_to[0]].name}",
                            [name],
                        )
        injected = self.faults.record_failures(sobject.name)

        def inject(index: int) -> RecordError | None:
            return pre_errors[index] if index in pre_errors else injected(index)

        return self.org.apply(
            sobject,
            info["operation"],
            records,
            external_id_field=info.get("externalIdFieldName"),
            inject_failure=inject,
        )

    def _resolve_related(
        self, sobject: ObjectSpec, lookups: dict[tuple[str, str], set[str]]
    ) -> dict[tuple[str, str], dict[str, str]]:
        resolved = {}
        for (name, related), values in lookups.items():
            target = OBJECTS[sobject.field(name).reference_to[0]]
            with self.org.lock:
                matches = self.org.find_live_by(target, related, values)
            resolved[(name, related)] = {v: ids[0] for v, ids in matches.items() if len(ids) == 1}
        return resolved

    def ingest_results(self, job_id: str, kind: str) -> str:
        info = self.ingest_job(job_id)
        column = {
            "successfulresults": "successful",
            "failedresults": "failed",
            "unprocessedrecords": "unprocessed",
        }[kind.lower()]
        value = self.org.job_blob(job_id, column)
        if value is None:
            if info["state"] in ("Open", "UploadComplete", "InProgress") and column != "unprocessed":
                raise ApiError(
                    400, "INVALIDJOBSTATE", f"Job {job_id} is {info['state']}; results are not ready"
                )
            upload = (self.org.job_blob(job_id, "upload") or b"").decode("utf-8")
            first = upload.splitlines()[0] if upload else ""
            prefix = {"successful": '"sf__Id","sf__Created"', "failed": '"sf__Id","sf__Error"'}.get(column)
            if column == "unprocessed":
                return (
                    upload
                    if info["state"] in ("Aborted", "Failed", "Open", "UploadComplete")
                    else first + "\n"
                )
            return f"{prefix},{first}\n" if first else f"{prefix}\n"
        return value

    # ------------------------------------------------------------ query

    def compile(self, soql: str) -> CompiledQuery:
        try:
            return compile_soql(soql)
        except SoqlError as exc:
            raise ApiError(400, exc.code, exc.message) from None

    def create_query_job(self, spec: dict[str, Any], api_version: str) -> dict[str, Any]:
        operation = spec.get("operation", "query")
        if operation not in ("query", "queryAll"):
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        compiled = self.compile(str(spec.get("query", "")))
        now = _now()
        info = {
            "id": self.new_job_id(),
            "operation": operation,
            "object": compiled.sobject.name,
            "createdById": INTEGRATION_USER_ID,
            "createdDate": now,
            "systemModstamp": now,
            "state": "UploadComplete",
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(api_version.lstrip("v")),
            "jobType": "V2Query",
            "lineEnding": spec.get("lineEnding", "LF"),
            "columnDelimiter": spec.get("columnDelimiter", "COMMA"),
            "numberRecordsProcessed": 0,
            "retries": 0,
            "totalProcessingTime": 0,
        }
        with self.lock:
            self.query_jobs[info["id"]] = QueryJob(info, compiled, operation == "queryAll")
        self.work.put(("query", info["id"]))
        return dict(info)

    def query_job(self, job_id: str) -> QueryJob:
        with self.lock:
            job = self.query_jobs.get(job_id)
        if job is None:
            raise ApiError(404, "NOT_FOUND", f"Query job {job_id} not found")
        return job

    def _process_query(self, job_id: str) -> None:
        job = self.query_job(job_id)
        if job.info["state"] != "UploadComplete":
            return
        job.info["state"] = "InProgress"
        started = time.monotonic()
        self.faults.hold_job()
        job.rows = list(self.org.run_query(job.compiled, job.include_deleted))
        job.info.update(
            state="JobComplete",
            numberRecordsProcessed=len(job.rows),
            systemModstamp=_now(),
            totalProcessingTime=int((time.monotonic() - started) * 1000),
        )

    def query_results(
        self, job_id: str, locator: str | None, max_records: int | None
    ) -> tuple[str, str, int]:
        job = self.query_job(job_id)
        if job.info["state"] != "JobComplete":
            raise ApiError(
                400, "INVALIDJOBSTATE", f"Query job {job_id} is {job.info['state']}; results not ready"
            )
        try:
            offset = int(base64.b64decode(locator).decode()) if locator else 0
        except ValueError:
            raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None
        size = max_records or DEFAULT_QUERY_PAGE
        page = job.rows[offset : offset + size]
        out = io.StringIO()
        writer = csv.writer(
            out,
            quoting=csv.QUOTE_ALL,
            lineterminator="\n",
            delimiter=DELIMITERS.get(job.info["columnDelimiter"], ","),
        )
        writer.writerow([f.name for f in job.compiled.fields])
        for row in page:
            writer.writerow([render_csv(f.type, v) for f, v in zip(job.compiled.fields, row, strict=True)])
        following = offset + len(page)
        next_locator = (
            base64.b64encode(str(following).encode()).decode() if following < len(job.rows) else "null"
        )
        return out.getvalue(), next_locator, len(page)

    def rest_query(
        self, soql: str, include_deleted: bool, api_version: str, batch: int = 2000
    ) -> dict[str, Any]:
        compiled = self.compile(soql)
        records = [
            self.rest_record(
                compiled.sobject,
                api_version,
                dict(zip([f.name for f in compiled.fields], row, strict=True)),
                compiled.fields,
            )
            for row in self.org.run_query(compiled, include_deleted)
        ]
        return self._rest_page(records, 0, api_version, batch)

    def _rest_page(
        self, records: list[dict[str, Any]], offset: int, api_version: str, batch: int
    ) -> dict[str, Any]:
        page = records[offset : offset + batch]
        body: dict[str, Any] = {
            "totalSize": len(records),
            "done": offset + batch >= len(records),
            "records": page,
        }
        if not body["done"]:
            cursor = f"01g8d{secrets.token_hex(6)}"
            with self.lock:
                self.cursors[cursor] = (records, offset + batch)
            body["nextRecordsUrl"] = f"/services/data/{api_version}/query/{cursor}-{offset + batch}"
        return body

    def rest_query_more(self, cursor: str, api_version: str) -> dict[str, Any]:
        with self.lock:
            entry = self.cursors.pop(cursor.rsplit("-", 1)[0], None)
        if entry is None:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        records, offset = entry
        return self._rest_page(records, offset, api_version, 2000)

    @staticmethod
    def rest_record(
        spec: ObjectSpec, api_version: str, values: dict[str, Any], fields=None
    ) -> dict[str, Any]:
        types = {f.name: f.type for f in (fields or spec.fields)}
        record: dict[str, Any] = {
            "attributes": {
                "type": spec.name,
                "url": f"/services/data/{api_version}/sobjects/{spec.name}/{values.get('Id', '')}",
            }
        }
        for name, value in values.items():
            record[name] = render_json(types.get(name, "string"), value)
        return record

    # ------------------------------------------------------------ REST sObject rows

    def rest_write(
        self,
        spec: ObjectSpec,
        operation: str,
        body: dict[str, Any],
        *,
        record_id: str | None = None,
        external_id: tuple[str, str] | None = None,
    ) -> Outcome:
        row = {}
        for name, value in body.items():
            if name == "attributes":
                continue
            if spec.field(name) is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {spec.name}"
                )
            row[name] = value
        if record_id is not None:
            normalized = normalize_id(record_id)
            if normalized is None:
                raise ApiError(
                    400, "MALFORMED_ID", f"{spec.name} ID: id value of incorrect type: {record_id}"
                )
            row["Id"] = normalized
        key = None
        if external_id is not None:
            key_spec = spec.field(external_id[0])
            if key_spec is None or not key_spec.external_id:
                raise ApiError(
                    404,
                    "NOT_FOUND",
                    f"Provided external ID field does not exist or is not accessible: {external_id[0]}",
                )
            key = key_spec.name
            row[key] = external_id[1]
        outcome = self.org.apply(spec, operation, [row], external_id_field=key)[0]
        if outcome.error is not None:
            status = 404 if outcome.error.code == "NOT_FOUND" else 400
            raise ApiError(status, outcome.error.code, outcome.error.message)
        return outcome


def header_only(header: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(header)
    return out.getvalue()


def render_csv(field_type: str, value: Any) -> str:
    if value is None:
        return ""
    if field_type == "boolean":
        return "true" if value else "false"
    if field_type in ("int", "double", "currency"):
        return format_number(value)
    return str(value)


def render_json(field_type: str, value: Any) -> Any:
    if value is None:
        return None
    if field_type == "boolean":
        return bool(value)
    if field_type == "int":
        return int(value)
    if field_type in ("double", "currency"):
        return float(value)
    if field_type == "datetime":
        return str(value).replace("Z", "+0000")
    return value


# ---------------------------------------------------------------- HTTP


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
            _API + r"/jobs/ingest/(?P<job>\w+)/(?P<kind>successfulResults|failedResults|unprocessedrecords)",
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
    ]
]


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
        route = None
        for route_method, pattern, name in ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                route = (name, match.groupdict())
                break
        try:
            if route is None:
                raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {method} {path}")
            name, params = route
            self.sandbox.count(name)
            if path.startswith("/services/data/"):
                self._admit(path)
            getattr(self, f"route_{name}")(**params)
        except ApiError as exc:
            if route and route[0] == "token":
                self._json(exc.status, {"error": exc.code, "error_description": exc.message})
            else:
                self._json(exc.status, [{"errorCode": exc.code, "message": exc.message}], exc.headers)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:
            log.exception("sandbox error on %s %s", method, path)
            self._json(500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": str(exc)}])

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
        self._json(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [
                    {
                        "name": s.name,
                        "label": s.name,
                        "keyPrefix": s.key_prefix,
                        "queryable": True,
                        "createable": True,
                        "updateable": True,
                        "urls": {"describe": f"/services/data/{v}/sobjects/{s.name}/describe"},
                    }
                    for s in OBJECTS.values()
                ],
            },
        )

    def route_describe(self, v: str, obj: str) -> None:
        self._json(200, describe(self._object(obj), v))

    def route_sobject_info(self, v: str, obj: str) -> None:
        spec = self._object(obj)
        self._json(
            200, {"objectDescribe": {"name": spec.name, "keyPrefix": spec.key_prefix}, "recentItems": []}
        )

    def route_sobject_create(self, v: str, obj: str) -> None:
        outcome = self.sandbox.rest_write(self._object(obj), "insert", self._json_body())
        self._json(201, {"id": outcome.record_id, "success": True, "errors": []})

    def route_sobject_get(self, v: str, obj: str, id: str) -> None:
        spec = self._object(obj)
        record = self.sandbox.org.get(spec, normalize_id(id) or id)
        if record is None or record["IsDeleted"]:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        fields = self.query_params.get("fields")
        if fields:
            wanted = {f.strip().lower() for f in fields.split(",")}
            record = {k: val for k, val in record.items() if k.lower() in wanted or k == "Id"}
        self._json(200, self.sandbox.rest_record(spec, v, record))

    def route_sobject_update(self, v: str, obj: str, id: str) -> None:
        self.sandbox.rest_write(self._object(obj), "update", self._json_body(), record_id=id)
        self._json(204, None)

    def route_sobject_delete(self, v: str, obj: str, id: str) -> None:
        outcome = self.sandbox.org.apply(self._object(obj), "delete", [{"Id": id}])[0]
        if outcome.error is not None:
            raise ApiError(
                404 if outcome.error.code == "NOT_FOUND" else 400, outcome.error.code, outcome.error.message
            )
        self._json(204, None)

    def route_sobject_upsert(self, v: str, obj: str, key: str, value: str) -> None:
        outcome = self.sandbox.rest_write(
            self._object(obj), "upsert", self._json_body(), external_id=(key, value)
        )
        if outcome.created:
            self._json(201, {"id": outcome.record_id, "success": True, "errors": [], "created": True})
        else:
            self._json(204, None)

    def route_rest_query(self, v: str) -> None:
        self._json(200, self.sandbox.rest_query(self.query_params.get("q", ""), False, v))

    def route_rest_query_all(self, v: str) -> None:
        self._json(200, self.sandbox.rest_query(self.query_params.get("q", ""), True, v))

    def route_rest_query_more(self, v: str, cursor: str) -> None:
        self._json(200, self.sandbox.rest_query_more(cursor, v))

    # ------------------------------------------------------------ routes: Bulk 2.0

    def route_ingest_create(self, v: str) -> None:
        self._json(200, self.sandbox.create_ingest_job(self._json_body(), v))

    def route_ingest_list(self, v: str) -> None:
        jobs = self.sandbox.org.jobs_in_state(
            "Open", "UploadComplete", "InProgress", "JobComplete", "Failed", "Aborted"
        )
        self._json(200, {"done": True, "records": jobs, "nextRecordsUrl": None})

    def route_ingest_info(self, v: str, job: str) -> None:
        self._json(200, self.sandbox.ingest_job(job))

    def route_ingest_state(self, v: str, job: str) -> None:
        self._json(200, self.sandbox.change_state(job, str(self._json_body().get("state"))))

    def route_ingest_delete(self, v: str, job: str) -> None:
        info = self.sandbox.ingest_job(job)
        if info["state"] not in ("UploadComplete", "JobComplete", "Failed", "Aborted"):
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job} is {info['state']}; cannot delete it")
        self._json(204, None)

    def route_ingest_upload(self, v: str, job: str) -> None:
        if not (self.headers.get("Content-Type") or "").startswith("text/csv"):
            raise ApiError(400, "INVALIDJOB", "Upload Content-Type must be text/csv")
        self.sandbox.upload(job, self.body)
        self._send(201, b"", "text/plain")

    def route_ingest_results(self, v: str, job: str, kind: str) -> None:
        self._csv(self.sandbox.ingest_results(job, kind))

    def route_query_create(self, v: str) -> None:
        self._json(200, self.sandbox.create_query_job(self._json_body(), v))

    def route_query_info(self, v: str, job: str) -> None:
        self._json(200, dict(self.sandbox.query_job(job).info))

    def route_query_state(self, v: str, job: str) -> None:
        query_job = self.sandbox.query_job(job)
        if self._json_body().get("state") == "Aborted" and query_job.info["state"] in (
            "UploadComplete",
            "InProgress",
        ):
            query_job.info["state"] = "Aborted"
        self._json(200, dict(query_job.info))

    def route_query_results(self, v: str, job: str) -> None:
        max_records = self.query_params.get("maxRecords")
        text, locator, count = self.sandbox.query_results(
            job, self.query_params.get("locator") or None, int(max_records) if max_records else None
        )
        self._csv(text, {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(count)})

    # ------------------------------------------------------------ routes: admin

    def route_admin_health(self) -> None:
        self._json(200, {"status": "ok", "url": self.sandbox.url})

    def route_admin_counters(self) -> None:
        with self.sandbox.lock:
            self._json(
                200,
                {"endpoints": dict(self.sandbox.counters), "api_requests": self.sandbox.auth.api_requests},
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
        with self.sandbox.lock:
            self.sandbox.counters.clear()
        self._json(200, self.sandbox.faults.to_dict())

    def route_admin_expire(self) -> None:
        self.sandbox.auth.expire_sessions()
        self._json(200, {"expired": True})

    def route_admin_seed(self) -> None:
        body = json.loads(self.body or b"{}")
        self._json(200, seed(self.sandbox.org, body))


def describe(spec: ObjectSpec, api_version: str) -> dict[str, Any]:
    return {
        "name": spec.name,
        "label": spec.name,
        "keyPrefix": spec.key_prefix,
        "custom": False,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "urls": {"sobject": f"/services/data/{api_version}/sobjects/{spec.name}"},
        "fields": [
            {
                "name": f.name,
                "label": f.name,
                "type": f.type,
                "length": f.length
                if f.type not in ("int", "double", "currency", "boolean", "date", "datetime")
                else 0,
                "nillable": f.nillable,
                "createable": f.createable,
                "updateable": f.updateable,
                "externalId": f.external_id,
                "unique": f.unique,
                "idLookup": f.external_id or f.name == "Id",
                "custom": f.name.endswith("__c"),
                "referenceTo": list(f.reference_to),
                "relationshipName": f.relationship_name,
                "defaultedOnCreate": f.default is not None
                or f.name in ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted"),
                "defaultValue": f.default
                if f.type != "boolean"
                else (f.default == "true" if f.default else None),
                "precision": 18 if f.type in ("double", "currency") else 0,
                "scale": 2 if f.type == "currency" else 0,
            }
            for f in spec.fields
        ],
    }


def make_server(sandbox: Sandbox, host: str, port: int, tls_dir: Path | None = None) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"sandbox": sandbox})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    scheme = "http"
    if tls_dir is not None:
        server.socket = server_context(tls_dir).wrap_socket(server.socket, server_side=True)
        scheme = "https"
    sandbox.url = f"{scheme}://{host}:{server.server_address[1]}"
    return server
