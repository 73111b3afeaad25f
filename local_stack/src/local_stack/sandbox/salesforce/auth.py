"""Who may call the sandbox and how often: OAuth tokens (client credentials or JWT bearer) and the daily
API request allowance every data call draws on."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from typing import Any

from local_stack.sandbox.salesforce.errors import ApiError
from local_stack.sandbox.salesforce.schema import INTEGRATION_USER_ID, ORG_ID
from local_stack.sandbox.salesforce.store import Org

DEFAULT_DAILY_API_LIMIT = 1_000_000
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class Auth:
    """Issued tokens and API usage; usage is kept in the org so that it survives restarts."""

    def __init__(
        self,
        org: Org,
        *,
        client_id: str,
        client_secret: str,
        jwt_public_keys: dict[str, str] | None = None,
        daily_api_limit: int = DEFAULT_DAILY_API_LIMIT,
    ) -> None:
        self.org = org
        self.client_id = client_id
        self.client_secret = client_secret
        self.jwt_public_keys = dict(jwt_public_keys or {})
        self.daily_api_limit = daily_api_limit
        self.lock = threading.Lock()
        self.tokens: dict[str, dict[str, str]] = {}
        self.api_requests = int(org.meta_get("api_requests", "0") or 0)

    def save_usage(self) -> None:
        self.org.meta_set("api_requests", str(self.api_requests))

    def issue_token(self, form: dict[str, str], instance_url: str) -> dict[str, Any]:
        """The token endpoint's answer to this form, for an org served at `instance_url`."""
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                raise ApiError(400, "invalid_client", "invalid client credentials")
            subject = "integration@sandbox.platform"
        elif grant == JWT_BEARER:
            subject = self._verify_jwt(form.get("assertion", ""), instance_url)
        else:
            raise ApiError(400, "unsupported_grant_type", f"grant type not supported: {grant}")
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(40)}"
        with self.lock:
            self.tokens[token] = {"username": subject}
        return {
            "access_token": token,
            "instance_url": instance_url,
            "id": f"{instance_url}/id/{ORG_ID}/{INTEGRATION_USER_ID}",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            "scope": "api",
        }

    def _verify_jwt(self, assertion: str, instance_url: str) -> str:
        """The subject of a JWT-bearer assertion signed by a registered client's key."""
        import jwt  # PyJWT (+ cryptography for RS256)

        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise ApiError(400, "invalid_grant", f"invalid assertion: {exc}") from None
        issuer = unverified.get("iss", "")
        key = self.jwt_public_keys.get(issuer)
        if key is None:
            raise ApiError(400, "invalid_client_id", f"client identifier invalid: {issuer}")
        audiences = [instance_url, "https://login.salesforce.com", "https://test.salesforce.com"]
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(400, "invalid_grant", "expired authorization code") from None
        except jwt.PyJWTError as exc:
            raise ApiError(400, "invalid_grant", f"invalid assertion: {exc}") from None
        return str(claims["sub"])

    def expire_sessions(self) -> None:
        with self.lock:
            self.tokens.clear()

    def check_session(self, header: str | None) -> None:
        """Admit a data call with this Authorization header, counting it against the allowance."""
        token = (header or "").removeprefix("Bearer ").removeprefix("OAuth ").strip()
        with self.lock:
            if token not in self.tokens:
                raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            self.api_requests += 1
            if self.api_requests > self.daily_api_limit:
                raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")

    def limit_info(self) -> str:
        """The Sforce-Limit-Info header Salesforce puts on every REST API response."""
        with self.lock:
            return f"api-usage={self.api_requests}/{self.daily_api_limit}"

    def limits(self) -> dict[str, Any]:
        remaining = max(0, self.daily_api_limit - self.api_requests)
        return {
            "DailyApiRequests": {"Max": self.daily_api_limit, "Remaining": remaining},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        }
