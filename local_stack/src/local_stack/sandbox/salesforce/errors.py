"""Salesforce's error response, raised anywhere in the sandbox and rendered by the HTTP handler."""

from __future__ import annotations


class ApiError(Exception):
    """An error response: HTTP status + Salesforce's [{"errorCode", "message"[, "fields"]}] body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        fields: list[str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
        self.fields = fields
        """A record's failing fields: REST write errors name them, as Salesforce does."""

    def body(self) -> list[dict[str, object]]:
        error: dict[str, object] = {"errorCode": self.code, "message": self.message}
        if self.fields is not None:
            error["fields"] = self.fields
        return [error]
