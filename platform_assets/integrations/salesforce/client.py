"""Thin Salesforce client: OAuth 2.0 (client credentials, JWT bearer), Bulk API 2.0 ingest and query,
describe and limits — on requests + tenacity.

Works the same against a real org (login.salesforce.com, test.salesforce.com, a My Domain) and the local
sandbox (`local_stack.sandbox.salesforce`): the token host is configurable and every other call goes to
the `instance_url` the token response names.

Resilience, all bounded by `max_attempts`:
- 429, 5xx, connection errors and 403 REQUEST_LIMIT_EXCEEDED are retried with exponential backoff and jitter;
  a Retry-After header is honoured (capped at `backoff_max`). Exhausted retries raise `SalesforceUnavailable`.
- 401 INVALID_SESSION_ID re-authenticates once and replays the request.

Values sent in ingest CSVs: None becomes `#N/A` (Bulk 2.0's explicit null), booleans `true`/`false`,
dates and datetimes ISO-8601. Secrets and tokens are never logged.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

import requests
import tenacity

log = logging.getLogger(__name__)

INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
TERMINAL_JOB_STATES = ("JobComplete", "Failed", "Aborted")
# Bulk 2.0 accepts 150 MB per upload, measured after base64 encoding; 100 MB raw CSV stays under it.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
NULL_VALUE = "#N/A"
_API_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_STEADY_POLLS = 5  # polls at the base interval before backing off
PLATFORM_CLIENT_NAME = "asset-platform"
"""Sent as `Sforce-Call-Options: client=<name>` on every call: Salesforce records it in the changeOrigin of
the change events of the platform's own writes (`com/salesforce/api/bulkapi/62.0;client=asset-platform`)."""


@dataclass(frozen=True)
class SalesforceCredentials:
    login_url: str
    """Token host: https://login.salesforce.com, https://test.salesforce.com, a My Domain, or the sandbox."""
    client_id: str
    client_secret: str | None = None
    """OAuth 2.0 client-credentials flow."""
    username: str | None = None
    """OAuth 2.0 JWT-bearer flow (with private_key, PEM)."""
    private_key: str | None = None
    api_version: str = "v62.0"

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("SalesforceCredentials needs client_id (SALESFORCE_CLIENT_ID).")
        if not self.client_secret and not (self.username and self.private_key):
            raise ValueError(
                "SalesforceCredentials needs either client_secret (client-credentials flow, "
                "SALESFORCE_CLIENT_SECRET) or username + private_key (JWT-bearer flow, SALESFORCE_USERNAME "
                "and SALESFORCE_PRIVATE_KEY)."
            )
        if not self.api_version.startswith("v"):
            raise ValueError(f"api_version must look like 'v62.0', got {self.api_version!r}.")

    def __repr__(self) -> str:  # never print the secret or the key
        flow = "jwt-bearer" if self.uses_jwt else "client-credentials"
        return (
            f"SalesforceCredentials(login_url={self.login_url!r}, flow={flow}, "
            f"api_version={self.api_version})"
        )

    @property
    def uses_jwt(self) -> bool:
        return bool(self.username and self.private_key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SalesforceCredentials:
        """Credentials from SALESFORCE_LOGIN_URL, SALESFORCE_CLIENT_ID and either SALESFORCE_CLIENT_SECRET
        or SALESFORCE_USERNAME + SALESFORCE_PRIVATE_KEY (SALESFORCE_API_VERSION optional)."""
        import os

        env = os.environ if environ is None else environ
        missing = [v for v in ("SALESFORCE_LOGIN_URL", "SALESFORCE_CLIENT_ID") if not env.get(v)]
        if missing:
            raise ValueError(f"Salesforce credentials need environment variables: {', '.join(missing)}.")
        return cls(
            login_url=env["SALESFORCE_LOGIN_URL"],
            client_id=env["SALESFORCE_CLIENT_ID"],
            client_secret=env.get("SALESFORCE_CLIENT_SECRET") or None,
            username=env.get("SALESFORCE_USERNAME") or None,
            private_key=env.get("SALESFORCE_PRIVATE_KEY") or None,
            api_version=env.get("SALESFORCE_API_VERSION") or "v62.0",
        )


class SalesforceError(Exception):
    """A Salesforce call failed; the message carries Salesforce's errorCode and message."""

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class SalesforceUnavailable(SalesforceError):
    """Retries were exhausted (bounded): says how many attempts were made and the last error."""


@dataclass
class IngestResult:
    job_ids: list[str]
    successful: list[dict[str, str]]
    """The sent fields + sf__Id, sf__Created."""
    failed: list[dict[str, str]]
    """The sent fields + sf__Id, sf__Error."""
    unprocessed: list[dict[str, str]]
    """The sent fields (records of jobs that ended Failed or Aborted before processing them)."""
    job_errors: dict[str, str] = field(default_factory=dict)
    """Job id -> Salesforce's errorMessage, for jobs that ended Failed or Aborted."""

    def extend(self, other: IngestResult) -> None:
        self.job_ids.extend(other.job_ids)
        self.successful.extend(other.successful)
        self.failed.extend(other.failed)
        self.unprocessed.extend(other.unprocessed)
        self.job_errors.update(other.job_errors)


class _Retryable(Exception):
    """A transient failure worth retrying; carries the server's Retry-After (seconds) when given."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _error_details(response: requests.Response) -> tuple[str | None, str]:
    """(errorCode, message) from a REST error array, an OAuth error object, or plain text."""
    try:
        body = response.json()
    except ValueError:
        return None, (response.text or response.reason or "")[:500]
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0].get("errorCode"), str(body[0].get("message", ""))
    if isinstance(body, dict):
        if "error" in body:
            return str(body["error"]), str(body.get("error_description", ""))
        if "errorCode" in body:
            return str(body["errorCode"]), str(body.get("message", ""))
    return None, str(body)[:500]


class _LineCollector:
    """A file-like target for csv.writer that hands back what each writerow wrote."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> None:
        self._parts.append(text)

    def take(self) -> str:
        text = "".join(self._parts)
        self._parts.clear()
        return text


def _csv_value(value: Any) -> str:
    if value is None:
        return NULL_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _jwt_audience(login_url: str) -> str:
    """Salesforce wants login.salesforce.com or test.salesforce.com as audience; others name themselves."""
    host = urlparse(login_url).hostname or ""
    if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com"):
        return "https://test.salesforce.com"
    if host.endswith("salesforce.com"):
        return "https://login.salesforce.com"
    return login_url.rstrip("/")


class SalesforceClient:
    """One authenticated connection to an org. Not thread-safe: use one client per thread."""

    def __init__(
        self,
        credentials: SalesforceCredentials,
        *,
        max_attempts: int = 8,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        poll_interval: float = 0.5,
        poll_timeout: float = 3600.0,
        timeout: float = 60.0,
        client_name: str = PLATFORM_CLIENT_NAME,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1.")
        self.credentials = credentials
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self.timeout = timeout
        self.client_name = client_name
        self.max_upload_bytes = MAX_UPLOAD_BYTES
        self.api_calls = 0
        self.api_usage: dict[str, int] = {}
        """The org's daily API requests as of the last response ({"Max": …, "Remaining": …}), from the
        Sforce-Limit-Info header Salesforce sends on every REST call; empty until a response carried it."""
        self._http = requests.Session()
        self._access_token: str | None = None
        self._instance_url: str | None = None
        self._org_id: str | None = None

    # ---------------------------------------------------------------- HTTP plumbing

    @property
    def instance_url(self) -> str:
        if self._instance_url is None:
            self._authenticate()
        assert self._instance_url is not None
        return self._instance_url

    def _data_url(self, path: str) -> str:
        return f"{self.instance_url}/services/data/{self.credentials.api_version}/{path.lstrip('/')}"

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.backoff_max)
        jitter = tenacity.wait_random_exponential(multiplier=self.backoff_initial, max=self.backoff_max)
        return jitter(retry_state)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request with bounded retries on transient failures; returns the final response."""

        def attempt() -> requests.Response:
            self.api_calls += 1
            try:
                response = self._http.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
            status = response.status_code
            if status == 429 or status >= 500 or (status == 403 and self._limit_exceeded(response)):
                code, message = _error_details(response)
                detail = f"HTTP {status} {code or ''} {message}".strip()
                raise _Retryable(detail, retry_after=_retry_after_seconds(response))
            return response

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            before_sleep=lambda rs: log.warning(
                "Salesforce %s %s failed (attempt %d/%d): %s; retrying",
                method,
                urlparse(url).path,
                rs.attempt_number,
                self.max_attempts,
                rs.outcome.exception(),
            ),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            raise SalesforceUnavailable(
                f"Salesforce {method} {urlparse(url).path} at {urlparse(url).netloc} unavailable after "
                f"{self.max_attempts} attempts; last error: {exc}"
            ) from exc

    @staticmethod
    def _limit_exceeded(response: requests.Response) -> bool:
        return _error_details(response)[0] == "REQUEST_LIMIT_EXCEEDED"

    def _authenticate(self) -> None:
        creds = self.credentials
        if creds.uses_jwt:
            form = {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": self._jwt_assertion(),
            }
        else:
            form = {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret or "",
            }
        token_url = f"{creds.login_url.rstrip('/')}/services/oauth2/token"
        response = self._send("POST", token_url, data=form, headers={"Accept": "application/json"})
        if response.status_code != 200:
            code, message = _error_details(response)
            raise SalesforceError(
                f"Salesforce authentication at {token_url} failed: HTTP {response.status_code} {code}: "
                f"{message}. "
                "Check SALESFORCE_LOGIN_URL, SALESFORCE_CLIENT_ID and the secret or key.",
                status=response.status_code,
                error_code=code,
            )
        body = response.json()
        self._access_token = body["access_token"]
        self._instance_url = body["instance_url"].rstrip("/")
        # The identity URL ends with /id/<org id>/<user id>.
        self._org_id = str(body.get("id", "")).rstrip("/").split("/")[-2:][0] or None
        log.info("Authenticated to Salesforce instance %s", self._instance_url)

    def _jwt_assertion(self) -> str:
        import jwt  # PyJWT with cryptography for RS256; only the JWT-bearer flow needs it

        creds = self.credentials
        claims = {
            "iss": creds.client_id,
            "sub": creds.username,
            "aud": _jwt_audience(creds.login_url),
            "exp": int(time.time()) + 180,
        }
        return jwt.encode(claims, creds.private_key, algorithm="RS256")

    def _request(
        self, method: str, url: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any
    ) -> requests.Response:
        """An authenticated call: re-authenticates once on INVALID_SESSION_ID, raises on any other error."""
        if self._access_token is None:
            self._authenticate()
        for replay in (False, True):
            headers = {
                **kwargs.pop("headers", {}),
                "Authorization": f"Bearer {self._access_token}",
                "Sforce-Call-Options": f"client={self.client_name}",
            }
            response = self._send(method, url, headers=headers, **kwargs)
            if response.status_code == 401 and not replay:
                log.info("Salesforce session expired; re-authenticating once")
                self._authenticate()
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            break
        self._note_api_usage(response.headers.get("Sforce-Limit-Info"))
        if response.status_code not in expect:
            code, message = _error_details(response)
            raise SalesforceError(
                f"Salesforce {method} {urlparse(url).path} failed: "
                f"HTTP {response.status_code} {code}: {message}",
                status=response.status_code,
                error_code=code,
            )
        return response

    def _note_api_usage(self, header: str | None) -> None:
        """Parse `api-usage=18/5000[; api-bursts=…]` into the /limits DailyApiRequests shape."""
        usage = _API_USAGE.search(header or "")
        if usage:
            used, limit = int(usage[1]), int(usage[2])
            self.api_usage = {"Max": limit, "Remaining": max(0, limit - used)}

    def session(self, refresh: bool = False) -> tuple[str, str, str]:
        """(access token, instance URL, org id): what the Pub/Sub API takes as accesstoken, instanceurl and
        tenantid. `refresh` gets a new token (after the Pub/Sub API answered UNAUTHENTICATED)."""
        if refresh or self._access_token is None:
            self._authenticate()
        if not self._org_id:
            raise SalesforceError("The token response's identity URL (`id`) names no org id.")
        assert self._access_token is not None and self._instance_url is not None
        return self._access_token, self._instance_url, self._org_id

    # ---------------------------------------------------------------- REST

    def describe(self, sobject: str) -> dict:
        """The sObject describe JSON (fields: name, type, nillable, createable, updateable, externalId, …)."""
        return self._request("GET", self._data_url(f"sobjects/{sobject}/describe")).json()

    def limits(self) -> dict:
        """The org's /limits (DailyApiRequests Max/Remaining, …)."""
        return self._request("GET", self._data_url("limits")).json()

    # ---------------------------------------------------------------- Bulk 2.0 ingest

    def ingest(
        self,
        sobject: str,
        operation: str,
        records: Sequence[Mapping[str, Any]],
        *,
        external_id_field: str | None = None,
        max_records_per_job: int = 10_000,
        on_job_created: Callable[[str], None] | None = None,
    ) -> IngestResult:
        """Send records through Bulk API 2.0 ingest jobs (one CSV upload per job), wait, collect results.

        Records are split into jobs by `max_records_per_job` and by CSV size; `on_job_created(job_id)` runs
        right after each job is created, before its data is uploaded, so a caller can record pending jobs.
        """
        if operation not in INGEST_OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(INGEST_OPERATIONS)}, got {operation!r}.")
        if operation == "upsert" and not external_id_field:
            raise ValueError(f"upsert into {sobject} needs external_id_field (its External ID field).")
        if max_records_per_job < 1:
            raise ValueError("max_records_per_job must be at least 1.")
        result = IngestResult(job_ids=[], successful=[], failed=[], unprocessed=[])
        if not records:
            return result
        columns = self._columns(records, operation)
        job_ids = []
        for chunk in self._chunks(records, columns, max_records_per_job):
            job_id = self._create_ingest_job(sobject, operation, external_id_field)
            if on_job_created is not None:
                on_job_created(job_id)
            self._request(
                "PUT",
                self._data_url(f"jobs/ingest/{job_id}/batches"),
                expect=(201,),
                data=chunk,
                headers={"Content-Type": "text/csv"},
            )
            self._request("PATCH", self._data_url(f"jobs/ingest/{job_id}/"), json={"state": "UploadComplete"})
            job_ids.append(job_id)
        for job_id in job_ids:
            result.extend(self.job_results(job_id))
        return result

    @staticmethod
    def _columns(records: Sequence[Mapping[str, Any]], operation: str) -> list[str]:
        if operation in ("delete", "hardDelete"):
            return ["Id"]
        seen: dict[str, None] = {}
        for record in records:
            for key in record:
                seen.setdefault(key, None)
        return list(seen)

    def _chunks(
        self, records: Sequence[Mapping[str, Any]], columns: list[str], max_records: int
    ) -> Iterator[bytes]:
        """CSV bodies of at most `max_records` rows and `max_upload_bytes` bytes each."""
        lines = _LineCollector()
        writer = csv.writer(lines, lineterminator="\n")  # one writer for all rows: one line per writerow
        writer.writerow(columns)
        header = lines.take().encode("utf-8")
        body: list[bytes] = []
        size = len(header)
        blanks = itertools.repeat("")
        for record in records:
            # A column the record lacks is sent empty (Bulk 2.0: leave the field as it is).
            cells = map(record.get, columns, blanks)
            writer.writerow([v if type(v) is str else _csv_value(v) for v in cells])
            line = lines.take().encode("utf-8")
            if len(header) + len(line) > self.max_upload_bytes:
                raise ValueError(f"One record is larger than a Bulk 2.0 upload allows: {dict(record)!r:.200}")
            if body and (len(body) >= max_records or size + len(line) > self.max_upload_bytes):
                yield header + b"".join(body)
                body, size = [], len(header)
            body.append(line)
            size += len(line)
        if body:
            yield header + b"".join(body)

    def _create_ingest_job(self, sobject: str, operation: str, external_id_field: str | None) -> str:
        spec: dict[str, Any] = {
            "object": sobject,
            "operation": operation,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        if operation == "upsert":
            spec["externalIdFieldName"] = external_id_field
        return self._request("POST", self._data_url("jobs/ingest/"), json=spec).json()["id"]

    def _wait_for_job(self, kind: str, job_id: str) -> dict:
        """Poll a job with growing intervals until it reaches a terminal state; returns its info."""

        def poll() -> dict:
            return self._request("GET", self._data_url(f"jobs/{kind}/{job_id}")).json()

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda info: info.get("state") not in TERMINAL_JOB_STATES),
            wait=self._poll_wait,
            stop=tenacity.stop_after_delay(self.poll_timeout),
            retry_error_callback=lambda rs: rs.outcome.result(),
        )
        info = retrying(poll)
        if info.get("state") not in TERMINAL_JOB_STATES:
            raise SalesforceError(
                f"Bulk {kind} job {job_id} is still {info.get('state')} after {self.poll_timeout:.0f}s; "
                "its results can be collected later with job_results(job_id)."
            )
        return info

    def _poll_wait(self, retry_state: tenacity.RetryCallState) -> float:
        """Every `poll_interval` for the first polls (most jobs finish within seconds), then half again
        longer each time up to 10 s, so a long job costs a few API calls a minute."""
        backoff = 1.5 ** max(0, retry_state.attempt_number - _STEADY_POLLS)
        return min(self.poll_interval * backoff, max(self.poll_interval, 10.0))

    def ingest_job(self, job_id: str) -> dict:
        """An ingest job's info (state, numberRecordsProcessed, …)."""
        return self._request("GET", self._data_url(f"jobs/ingest/{job_id}")).json()

    def abort_ingest_job(self, job_id: str) -> dict:
        """Abort an ingest job that is Open or UploadComplete: Salesforce processes none of its records."""
        return self._request(
            "PATCH", self._data_url(f"jobs/ingest/{job_id}/"), json={"state": "Aborted"}
        ).json()

    def job_results(self, job_id: str) -> IngestResult:
        """Wait for an existing ingest job (e.g. one left pending by a crash) and read its results."""
        info = self._wait_for_job("ingest", job_id)
        # The job info already says when a result set is empty; skipping those downloads saves API calls.
        complete = info["state"] == "JobComplete"
        result = IngestResult(
            job_ids=[job_id],
            successful=self._result_rows(job_id, "successfulResults"),
            failed=[] if info.get("numberRecordsFailed") == 0 else self._result_rows(job_id, "failedResults"),
            unprocessed=[] if complete else self._result_rows(job_id, "unprocessedrecords"),
        )
        if info["state"] != "JobComplete":
            result.job_errors[job_id] = info.get("errorMessage") or info["state"]
            log.warning("Bulk ingest job %s ended %s: %s", job_id, info["state"], info.get("errorMessage"))
        return result

    def _result_rows(self, job_id: str, kind: str) -> list[dict[str, str]]:
        response = self._request("GET", self._data_url(f"jobs/ingest/{job_id}/{kind}/"))
        return _csv_records(response.content)

    # ---------------------------------------------------------------- Bulk 2.0 query

    def query(self, soql: str, *, max_records: int = 50_000) -> Iterator[dict[str, str]]:
        """Rows of a Bulk 2.0 query job, fetched page by page (`maxRecords`, `Sforce-Locator`)."""
        job_id = self._request(
            "POST", self._data_url("jobs/query"), json={"operation": "query", "query": soql}
        ).json()["id"]
        info = self._wait_for_job("query", job_id)
        if info["state"] != "JobComplete":
            raise SalesforceError(
                f"Bulk query job {job_id} ended {info['state']}: {info.get('errorMessage')} (SOQL: {soql})"
            )
        locator: str | None = None
        while True:
            params: dict[str, Any] = {"maxRecords": max_records}
            if locator:
                params["locator"] = locator
            response = self._request("GET", self._data_url(f"jobs/query/{job_id}/results"), params=params)
            yield from _csv_records(response.content)
            locator = response.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return


def _csv_records(content: bytes) -> list[dict[str, str]]:
    """A result CSV as one dict per row (header -> cell); twice as fast as csv.DictReader."""
    rows = csv.reader(io.StringIO(content.decode("utf-8"), newline=""))
    header = next(rows, None)
    return [] if header is None else [dict(zip(header, row, strict=False)) for row in rows if row]
