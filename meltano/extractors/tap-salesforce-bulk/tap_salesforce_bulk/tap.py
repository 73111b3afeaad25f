"""tap-salesforce-bulk: one stream per Salesforce object, extracted with Bulk API 2.0 query jobs.

The objects come from the `streams` setting (name, object, fields); each stream's fields and types come
from the object's describe when the tap discovers (catalog.py), so a field added in Salesforce is extracted
on the next run. A run given a catalog (Meltano discovers first, then passes it) takes the schemas from it
and calls describe only for streams the catalog lacks.

Incremental by SystemModstamp (the replication key, bookmarked per stream): a run asks only for records
changed after the bookmark (`SystemModstamp > bookmark`, or `>= start_date` on the first run), sorted by it.
Deleted records come too (queryAll, IsDeleted = true) unless include_deleted is false. Key: Id.

Unlike singer-io's tap-salesforce, the token host is a setting (login.salesforce.com, test.salesforce.com,
a My Domain, or the platform's local sandbox), and both OAuth 2.0 client-credentials and JWT-bearer work.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from tap_salesforce_bulk.bulk import BulkQueryClient, BulkSettings, SalesforceTapError
from tap_salesforce_bulk.catalog import (
    KEY,
    REPLICATION_KEY,
    StreamConfig,
    StreamConfigError,
    json_kind,
    parse_streams,
    parse_value,
    stream_schema,
)


def soql_datetime(value: str) -> str:
    """A bookmark or start_date -> a SOQL datetime literal (UTC, unquoted)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return parsed.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SalesforceObjectStream(Stream):
    replication_key = REPLICATION_KEY
    is_sorted = True  # ORDER BY SystemModstamp: the bookmark advances record by record
    primary_keys = (KEY,)

    def __init__(self, tap: TapSalesforceBulk, config: StreamConfig, schema: dict[str, Any]) -> None:
        self.sobject = config.sobject
        super().__init__(tap=tap, schema=schema, name=config.name)
        self.bulk: BulkQueryClient = tap.bulk_client

    def selected_fields(self) -> dict[str, str]:
        """Field -> JSON kind of the properties the catalog selects (key and replication key always)."""
        return {
            name: json_kind(prop)
            for name, prop in self.schema["properties"].items()
            if name in (KEY, REPLICATION_KEY) or self.mask.get(("properties", name), True)
        }

    def soql(self, context: dict | None, fields: list[str]) -> str:
        bookmark = self.get_starting_replication_key_value(context)
        stored = self.stream_state.get("replication_key_value")
        where = ""
        if bookmark:
            # A stored bookmark was emitted already: strictly after it. A start_date is inclusive.
            op = ">" if stored and bookmark == stored else ">="
            where = f" WHERE {REPLICATION_KEY} {op} {soql_datetime(str(bookmark))}"
        return f"SELECT {', '.join(fields)} FROM {self.sobject}{where} ORDER BY {REPLICATION_KEY} ASC"

    def get_records(self, context: dict | None) -> Iterable[dict[str, Any]]:
        fields = self.selected_fields()
        soql = self.soql(context, list(fields))
        self.logger.info("Bulk query for %s: %s", self.name, soql)
        for row in self.bulk.query(soql, include_deleted=self.config.get("include_deleted", True)):
            yield {field: parse_value(kind, row.get(field, "")) for field, kind in fields.items()}


class TapSalesforceBulk(Tap):
    name = "tap-salesforce-bulk"
    config_jsonschema = th.PropertiesList(
        th.Property(
            "login_url",
            th.StringType,
            default="https://login.salesforce.com",
            description="Token host: https://login.salesforce.com, https://test.salesforce.com, a My "
            "Domain (https://acme.my.salesforce.com) or the local sandbox.",
        ),
        th.Property("client_id", th.StringType, required=True, description="Connected app consumer key."),
        th.Property(
            "client_secret",
            th.StringType,
            secret=True,
            description="Consumer secret (OAuth 2.0 client-credentials flow).",
        ),
        th.Property("username", th.StringType, description="Run-as user (OAuth 2.0 JWT-bearer flow)."),
        th.Property(
            "private_key",
            th.StringType,
            secret=True,
            description="PEM RSA private key whose certificate the connected app holds (JWT-bearer).",
        ),
        th.Property(
            "streams",
            th.ArrayType(
                th.ObjectType(
                    th.Property("name", th.StringType, required=True, description="Stream id (snake_case)."),
                    th.Property("object", th.StringType, required=True, description="API name: Case, X__c."),
                    th.Property(
                        "fields",
                        th.CustomType({"anyOf": [{"type": "string", "enum": ["*"]}, {"type": "array"}]}),
                        description='"*" (default: every queryable field of the describe) or field names.',
                    ),
                    th.Property("exclude", th.ArrayType(th.StringType), description='Left out of "*".'),
                )
            ),
            required=True,
            description="One entry per stream: the object it extracts and which of its fields.",
        ),
        th.Property("api_version", th.StringType, default="v62.0"),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Extract records changed at or after this time on the first run.",
        ),
        th.Property(
            "include_deleted",
            th.BooleanType,
            default=True,
            description="Use queryAll so deleted records arrive with IsDeleted = true.",
        ),
        th.Property("page_size", th.IntegerType, default=50_000, description="maxRecords per results page."),
        th.Property("max_attempts", th.IntegerType, default=8, description="Tries per call on 429/5xx."),
        th.Property("poll_interval", th.NumberType, default=0.5, description="First job poll interval (s)."),
    ).to_dict()

    _bulk: BulkQueryClient | None = None

    @property
    def bulk_client(self) -> BulkQueryClient:
        if self._bulk is None:
            c = self.config
            self._bulk = BulkQueryClient(
                BulkSettings(
                    login_url=c.get("login_url", "https://login.salesforce.com"),
                    client_id=c["client_id"],
                    client_secret=c.get("client_secret"),
                    username=c.get("username"),
                    private_key=c.get("private_key"),
                    api_version=c.get("api_version", "v62.0"),
                    max_attempts=int(c.get("max_attempts", 8)),
                    poll_interval=float(c.get("poll_interval", 0.5)),
                    page_size=int(c.get("page_size", 50_000)),
                )
            )
        return self._bulk

    def discover_streams(self) -> list[Stream]:
        try:
            configs = parse_streams(self.config.get("streams"))
        except StreamConfigError as error:
            raise SalesforceTapError(f"tap-salesforce-bulk: {error}") from None
        return [SalesforceObjectStream(self, config, self.stream_schema(config)) for config in configs]

    def stream_schema(self, config: StreamConfig) -> dict[str, Any]:
        """From the input catalog when it has the stream, else from the object's describe (now)."""
        entry = self.input_catalog.get_stream(config.name) if self.input_catalog else None
        if entry is not None and entry.schema.properties:
            return entry.schema.to_dict()
        try:
            describe = self.bulk_client.describe(config.sobject)
        except SalesforceTapError as error:
            raise SalesforceTapError(
                f"tap-salesforce-bulk: {config.where}: describe failed: {error}"
            ) from None
        try:
            return stream_schema(config, describe)
        except StreamConfigError as error:
            raise SalesforceTapError(f"tap-salesforce-bulk: {error}") from None


if __name__ == "__main__":
    TapSalesforceBulk.cli()
