"""Bulk API 2.0 jobs: their state machine and the one background worker that processes them, like
Salesforce's queue. An ingest job moves Open → UploadComplete → InProgress → JobComplete | Failed | Aborted
while clients poll; a query job starts UploadComplete. Ingest jobs live in the org, so a restart resumes
them; query jobs live in memory.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local_stack.sandbox.salesforce.bulk_csv import DELIMITERS, apply_upload, query_csv
from local_stack.sandbox.salesforce.errors import ApiError
from local_stack.sandbox.salesforce.faults import Faults
from local_stack.sandbox.salesforce.schema import INTEGRATION_USER_ID, ObjectSpec, find_object
from local_stack.sandbox.salesforce.soql import CompiledQuery, compile_soql
from local_stack.sandbox.salesforce.store import Org

log = logging.getLogger(__name__)

DEFAULT_QUERY_PAGE = 50_000
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
INGEST_STATES = ("Open", "UploadComplete", "InProgress", "JobComplete", "Failed", "Aborted")


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


@dataclass
class QueryJob:
    info: dict[str, Any]
    compiled: CompiledQuery
    include_deleted: bool
    rows: list[tuple] = field(default_factory=list)


class BulkJobs:
    """The org's Bulk jobs; `on_ingest_done` runs after each applied ingest job, under the org's lock."""

    def __init__(self, org: Org, faults: Faults, on_ingest_done: Callable[[], None]) -> None:
        self.org = org
        self.faults = faults
        self.on_ingest_done = on_ingest_done
        self.lock = threading.Lock()
        self.query_jobs: dict[str, QueryJob] = {}
        self.work: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.worker = threading.Thread(target=self._work, name="salesforce-sandbox-jobs", daemon=True)
        self.worker.start()
        # Jobs closed before a restart were never processed: pick them up again.
        for info in self.org.jobs_in_state("UploadComplete", "InProgress"):
            self.work.put(("ingest", info["id"]))

    def close(self) -> None:
        self.work.put(None)
        self.worker.join(timeout=10)

    def _new_job_id(self) -> str:
        with self.org.lock:
            return self.org.allocate_ids("750", 1)[0]

    # ------------------------------------------------------------ ingest jobs

    def create_ingest_job(self, spec: dict[str, Any], api_version: str, origin: str = "") -> dict[str, Any]:
        """A new Open job; `origin` is the changeOrigin its records' change events will carry."""
        sobject = find_object(str(spec.get("object", "")))
        operation = spec.get("operation")
        if sobject is None:
            raise ApiError(400, "NOT_FOUND", f"sObject type '{spec.get('object')}' is not supported.")
        if operation not in INGEST_OPERATIONS:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        if spec.get("contentType", "CSV") != "CSV":
            raise ApiError(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
        delimiter = spec.get("columnDelimiter", "COMMA")
        if delimiter not in DELIMITERS:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid column delimiter: {delimiter}")
        external_id = _external_id_field(sobject, spec) if operation == "upsert" else None
        job_id, now = self._new_job_id(), _now()
        info = {
            "id": job_id,
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
            "contentUrl": f"services/data/{api_version}/jobs/ingest/{job_id}/batches",
            "lineEnding": spec.get("lineEnding", "LF"),
            "columnDelimiter": delimiter,
            "numberRecordsProcessed": 0,
            "numberRecordsFailed": 0,
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        }
        if external_id is None:
            info.pop("externalIdFieldName")
        self.org.save_job(info, origin=origin)
        return info

    def ingest_job(self, job_id: str) -> dict[str, Any]:
        info = self.org.load_job(job_id)
        if info is None:
            raise ApiError(404, "NOT_FOUND", f"Job {job_id} not found")
        return info

    def ingest_jobs(self) -> list[dict[str, Any]]:
        return self.org.jobs_in_state(*INGEST_STATES)

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
        """A client closes (UploadComplete) or aborts an open job."""
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

    def delete_ingest_job(self, job_id: str) -> None:
        """Accept deleting a job that is no longer open or running (the sandbox keeps its rows)."""
        info = self.ingest_job(job_id)
        if info["state"] not in ("UploadComplete", "JobComplete", "Failed", "Aborted"):
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job_id} is {info['state']}; cannot delete it")

    def ingest_results(self, job_id: str, kind: str) -> str:
        """successfulResults, failedResults or unprocessedrecords of a job, as CSV."""
        info = self.ingest_job(job_id)
        column = {
            "successfulresults": "successful",
            "failedresults": "failed",
            "unprocessedrecords": "unprocessed",
        }[kind.lower()]
        value = self.org.job_blob(job_id, column)
        if value is not None:
            return value
        if info["state"] in ("Open", "UploadComplete", "InProgress") and column != "unprocessed":
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job_id} is {info['state']}; results are not ready")
        # Not processed (yet): unprocessed is the upload itself, the other files its header alone.
        upload = (self.org.job_blob(job_id, "upload") or b"").decode("utf-8")
        first = upload.splitlines()[0] if upload else ""
        if column == "unprocessed":
            return (
                upload if info["state"] in ("Aborted", "Failed", "Open", "UploadComplete") else first + "\n"
            )
        prefix = {"successful": '"sf__Id","sf__Created"', "failed": '"sf__Id","sf__Error"'}[column]
        return f"{prefix},{first}\n" if first else f"{prefix}\n"

    # ------------------------------------------------------------ query jobs

    def create_query_job(self, spec: dict[str, Any], api_version: str) -> dict[str, Any]:
        operation = spec.get("operation", "query")
        if operation not in ("query", "queryAll"):
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        compiled = compile_soql(str(spec.get("query", "")))
        if compiled.count_only:  # Bulk API 2.0 does not run aggregate queries
            raise ApiError(
                400, "INVALIDJOB", "InvalidJob : COUNT() is not supported by Bulk API 2.0 query jobs"
            )
        now = _now()
        info = {
            "id": self._new_job_id(),
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

    @staticmethod
    def change_query_state(job: QueryJob, state: Any) -> dict[str, Any]:
        """A client may abort a query job still queued or running; any other change is ignored."""
        if state == "Aborted" and job.info["state"] in ("UploadComplete", "InProgress"):
            job.info["state"] = "Aborted"
        return dict(job.info)

    def query_results(
        self, job_id: str, locator: str | None, max_records: int | None
    ) -> tuple[str, str, int]:
        """A page of results as CSV, the locator of the next page ("null" after the last) and its size."""
        job = self.query_job(job_id)
        if job.info["state"] != "JobComplete":
            raise ApiError(
                400, "INVALIDJOBSTATE", f"Query job {job_id} is {job.info['state']}; results not ready"
            )
        try:
            offset = int(base64.b64decode(locator).decode()) if locator else 0
        except ValueError:
            raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None
        page = job.rows[offset : offset + (max_records or DEFAULT_QUERY_PAGE)]
        following = offset + len(page)
        next_locator = (
            base64.b64encode(str(following).encode()).decode() if following < len(job.rows) else "null"
        )
        text = query_csv(job.compiled.fields, page, job.info["columnDelimiter"])
        return text, next_locator, len(page)

    # ------------------------------------------------------------ the worker

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
        with self.org.lock, self.org.events.writing_as(self.org.job_blob(job_id, "origin") or ""):
            self._apply(job_id, info, started)

    def _apply(self, job_id: str, info: dict[str, Any], started: float) -> None:
        upload = self.org.job_blob(job_id, "upload") or b""
        try:
            applied = apply_upload(self.org, info, upload, self.faults.record_failures(info["object"]))
        except ApiError as exc:  # the header names no field of the object
            self._fail("ingest", job_id, exc.message)
            return
        elapsed = int((time.monotonic() - started) * 1000)
        info.update(
            state="JobComplete",
            numberRecordsProcessed=applied.processed,
            numberRecordsFailed=applied.failed,
            totalProcessingTime=elapsed,
            apiActiveProcessingTime=elapsed,
            systemModstamp=_now(),
        )
        self.org.save_job(
            info,
            successful=applied.successful_csv,
            failed=applied.failed_csv,
            unprocessed=applied.unprocessed_csv,
        )
        self.on_ingest_done()

    def _process_query(self, job_id: str) -> None:
        job = self.query_job(job_id)
        if job.info["state"] != "UploadComplete":
            return
        job.info["state"] = "InProgress"
        started = time.monotonic()
        self.faults.hold_job()
        width = len(job.compiled.fields)  # rows end with the parents' Ids, which the CSV leaves out
        job.rows = [row[:width] for row in self.org.run_query(job.compiled, job.include_deleted)]
        job.info.update(
            state="JobComplete",
            numberRecordsProcessed=len(job.rows),
            systemModstamp=_now(),
            totalProcessingTime=int((time.monotonic() - started) * 1000),
        )


def _external_id_field(sobject: ObjectSpec, spec: dict[str, Any]) -> str:
    """The field an upsert job matches records on: an External ID field or Id."""
    requested = str(spec.get("externalIdFieldName") or "")
    key = sobject.field(requested)
    if key is None or not (key.external_id or key.name == "Id"):
        raise ApiError(
            400,
            "INVALIDJOB",
            f"InvalidJob : Field name provided, {requested} does not match "
            f"an External ID, Salesforce Id, or indexed field for {sobject.name}",
        )
    return key.name
