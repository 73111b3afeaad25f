"""A small Bulk API 2.0 query client: OAuth (client credentials or JWT bearer) against any token host,
bounded retries with backoff, Sforce-Locator paging. Standalone: the tap cannot import the platform.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import backoff
import requests

log = logging.getLogger("tap_salesforce_bulk")
TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")


class SalesforceTapError(Exception):
    """A Salesforce call failed for good; the message has Salesforce's errorCode and message."""


class _Transient(Exception):
    """429 / 5xx / REQUEST_LIMIT_EXCEEDED / connection error: worth another try."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _NotDone(Exception):
    """A job still running; polled again with growing intervals."""


def _error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return f"HTTP {response.status_code} {body[0].get('errorCode')}: {body[0].get('message')}"
    if isinstance(body, dict) and "error" in body:
        return f"HTTP {response.status_code} {body['error']}: {body.get('error_description')}"
    return f"HTTP {response.status_code}: {body}"


@dataclass
class BulkSettings:
    login_url: str
    client_id: str
    client_secret: str | None
    username: str | None
    private_key: str | None
    api_version: str
    max_attempts: int = 8
    backoff_max: float = 30.0
    poll_interval: float = 0.5
    poll_timeout: float = 3600.0
    page_size: int = 50_000


class BulkQueryClient:
    def __init__(self, settings: BulkSettings) -> None:
        self.settings = settings
        self.http = requests.Session()
        self.token: str | None = None
        self.instance_url: str | None = None
        self.api_calls = 0

    # ------------------------------------------------------------ HTTP

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        s = self.settings

        @backoff.on_exception(
            backoff.expo,
            _Transient,
            max_tries=s.max_attempts,
            max_value=s.backoff_max,
            factor=0.5,
            jitter=backoff.full_jitter,
            raise_on_giveup=True,
            on_backoff=lambda details: self._honour_retry_after(details),
        )
        def attempt() -> requests.Response:
            self.api_calls += 1
            try:
                response = self.http.request(method, url, timeout=120, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise _Transient(f"{type(exc).__name__}: {exc}", None) from exc
            limit = response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in response.text
            if response.status_code == 429 or response.status_code >= 500 or limit:
                retry_after = response.headers.get("Retry-After")
                raise _Transient(
                    _error(response), float(retry_after) if retry_after and retry_after.isdigit() else None
                )
            return response

        try:
            return attempt()
        except _Transient as exc:
            raise SalesforceTapError(
                f"Salesforce {method} {urlparse(url).path} at {urlparse(url).netloc} unavailable after "
                f"{s.max_attempts} attempts; last error: {exc}"
            ) from exc

    def _honour_retry_after(self, details: dict[str, Any]) -> None:
        exc = details.get("exception")
        extra = getattr(exc, "retry_after", None)
        if extra:
            time.sleep(max(0.0, min(extra, self.settings.backoff_max) - details.get("wait", 0.0)))
        log.warning("Salesforce call failed (try %s): %s; retrying", details.get("tries"), exc)

    def authenticate(self) -> None:
        s = self.settings
        if s.username and s.private_key:
            import jwt

            host = urlparse(s.login_url).hostname or ""
            audience = (
                "https://test.salesforce.com"
                if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com")
                else "https://login.salesforce.com"
                if host.endswith("salesforce.com")
                else s.login_url.rstrip("/")
            )
            claims = {"iss": s.client_id, "sub": s.username, "aud": audience, "exp": int(time.time()) + 180}
            form = {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": jwt.encode(claims, s.private_key, algorithm="RS256"),
            }
        elif s.client_secret:
            form = {
                "grant_type": "client_credentials",
                "client_id": s.client_id,
                "client_secret": s.client_secret,
            }
        else:
            raise SalesforceTapError(
                "Configure client_secret (client-credentials flow) or username + "
                "private_key (JWT-bearer flow)."
            )
        url = f"{s.login_url.rstrip('/')}/services/oauth2/token"
        response = self._send("POST", url, data=form)
        if response.status_code != 200:
            raise SalesforceTapError(
                f"Salesforce authentication at {url} failed: {_error(response)}. "
                "Check login_url, client_id and the secret or key."
            )
        body = response.json()
        self.token, self.instance_url = body["access_token"], body["instance_url"].rstrip("/")

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """An authenticated data call; re-authenticates once on an expired session."""
        if self.token is None:
            self.authenticate()
        url = f"{self.instance_url}/services/data/{self.settings.api_version}/{path}"
        for replay in (False, True):
            response = self._send(method, url, headers={"Authorization": f"Bearer {self.token}"}, **kwargs)
            if response.status_code == 401 and not replay:
                self.authenticate()
                continue
            break
        if response.status_code >= 300:
            raise SalesforceTapError(f"Salesforce {method} {path} failed: {_error(response)}")
        return response

    def describe(self, sobject: str) -> dict[str, Any]:
        """The object's describe: its fields with their Salesforce types (one REST call)."""
        return self.request("GET", f"sobjects/{sobject}/describe").json()

    # ------------------------------------------------------------ Bulk 2.0 query

    def query(self, soql: str, include_deleted: bool) -> Iterator[dict[str, str]]:
        operation = "queryAll" if include_deleted else "query"
        job = self.request("POST", "jobs/query", json={"operation": operation, "query": soql}).json()
        info = self._wait(job["id"])
        if info["state"] != "JobComplete":
            raise SalesforceTapError(
                f"Bulk query job {job['id']} ended {info['state']}: {info.get('errorMessage')} (SOQL: {soql})"
            )
        locator = ""
        while True:
            params: dict[str, Any] = {"maxRecords": self.settings.page_size}
            if locator:
                params["locator"] = locator
            response = self.request("GET", f"jobs/query/{job['id']}/results", params=params)
            yield from csv.DictReader(io.StringIO(response.content.decode("utf-8")))
            locator = response.headers.get("Sforce-Locator") or ""
            if not locator or locator == "null":
                return

    def _wait(self, job_id: str) -> dict[str, Any]:
        s = self.settings

        @backoff.on_exception(
            backoff.expo,
            _NotDone,
            factor=s.poll_interval,
            max_value=10,
            max_time=s.poll_timeout,
            jitter=None,
            raise_on_giveup=False,
        )
        def poll() -> dict[str, Any]:
            info = self.request("GET", f"jobs/query/{job_id}").json()
            if info["state"] not in TERMINAL_STATES:
                raise _NotDone(info["state"])
            return info

        info = poll()
        if info is None:
            raise SalesforceTapError(f"Bulk query job {job_id} did not finish within {s.poll_timeout:.0f}s")
        return info
