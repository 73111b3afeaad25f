"""tap-salesforce-bulk: one stream per Salesforce object, extracted with Bulk API 2.0 query jobs.

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

from tap_salesforce_bulk.bulk import BulkQueryClient, BulkSettings

# Fields per stream (the platform's contract), by JSON type. Every object also has the SYSTEM fields.
STRING, INTEGER, NUMBER, BOOLEAN, DATE, DATETIME = (
    "string",
    "integer",
    "number",
    "boolean",
    "date",
    "date-time",
)
SYSTEM = {
    "Id": STRING,
    "CreatedDate": DATETIME,
    "LastModifiedDate": DATETIME,
    "SystemModstamp": DATETIME,
    "IsDeleted": BOOLEAN,
}
OBJECTS: dict[str, tuple[str, dict[str, str]]] = {
    "user": (
        "User",
        {
            "Username": STRING,
            "FirstName": STRING,
            "LastName": STRING,
            "Email": STRING,
            "Title": STRING,
            "IsActive": BOOLEAN,
            "Department": STRING,
            "Territory__c": STRING,
        },
    ),
    "account": (
        "Account",
        {
            "Name": STRING,
            "Website": STRING,
            "Industry": STRING,
            "NumberOfEmployees": INTEGER,
            "BillingCountry": STRING,
            "OwnerId": STRING,
            "Workspace_Id__c": STRING,
            "ARR__c": NUMBER,
            "Plan__c": STRING,
        },
    ),
    "lead": (
        "Lead",
        {
            "FirstName": STRING,
            "LastName": STRING,
            "Company": STRING,
            "Email": STRING,
            "Title": STRING,
            "Status": STRING,
            "LeadSource": STRING,
            "OwnerId": STRING,
            "Signup_Id__c": STRING,
            "Workspace_Id__c": STRING,
            "Product_Usage_Score__c": NUMBER,
            "Active_Users__c": NUMBER,
            "Last_Active_At__c": DATETIME,
            "IsConverted": BOOLEAN,
        },
    ),
    "contact": (
        "Contact",
        {
            "AccountId": STRING,
            "FirstName": STRING,
            "LastName": STRING,
            "Email": STRING,
            "Title": STRING,
            "OwnerId": STRING,
            "User_Id__c": STRING,
        },
    ),
    "opportunity": (
        "Opportunity",
        {
            "Name": STRING,
            "AccountId": STRING,
            "StageName": STRING,
            "CloseDate": DATE,
            "Amount": NUMBER,
            "Type": STRING,
            "OwnerId": STRING,
            "Workspace_Id__c": STRING,
        },
    ),
    "task": (
        "Task",
        {
            "Subject": STRING,
            "WhatId": STRING,
            "WhoId": STRING,
            "OwnerId": STRING,
            "ActivityDate": DATE,
            "Status": STRING,
            "Priority": STRING,
            "Description": STRING,
            "Platform_Key__c": STRING,
        },
    ),
}
JSON_TYPES = {
    STRING: th.StringType,
    INTEGER: th.IntegerType,
    NUMBER: th.NumberType,
    BOOLEAN: th.BooleanType,
    DATE: th.DateType,
    DATETIME: th.DateTimeType,
}


def parse_value(kind: str, text: str) -> Any:
    """A Bulk CSV cell -> its JSON value (empty cells are nulls)."""
    if text == "":
        return None
    if kind == BOOLEAN:
        return text.lower() == "true"
    if kind == INTEGER:
        return int(float(text))
    if kind == NUMBER:
        return float(text)
    return text


def soql_datetime(value: str) -> str:
    """A bookmark or start_date -> a SOQL datetime literal (UTC, unquoted)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return parsed.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SalesforceObjectStream(Stream):
    replication_key = "SystemModstamp"
    is_sorted = True  # ORDER BY SystemModstamp: the bookmark advances record by record
    primary_keys = ("Id",)

    def __init__(self, tap: TapSalesforceBulk, name: str) -> None:
        self.sobject, fields = OBJECTS[name]
        self.field_types = {**SYSTEM, **fields}
        schema = th.PropertiesList(
            *(th.Property(field, JSON_TYPES[kind]) for field, kind in self.field_types.items())
        ).to_dict()
        super().__init__(tap=tap, schema=schema, name=name)
        self.bulk: BulkQueryClient = tap.bulk_client

    def soql(self, context: dict | None) -> str:
        fields = ", ".join(self.field_types)
        bookmark = self.get_starting_replication_key_value(context)
        stored = self.stream_state.get("replication_key_value")
        where = ""
        if bookmark:
            # A stored bookmark was emitted already: strictly after it. A start_date is inclusive.
            op = ">" if stored and bookmark == stored else ">="
            where = f" WHERE SystemModstamp {op} {soql_datetime(str(bookmark))}"
        return f"SELECT {fields} FROM {self.sobject}{where} ORDER BY SystemModstamp ASC"

    def get_records(self, context: dict | None) -> Iterable[dict[str, Any]]:
        soql = self.soql(context)
        self.logger.info("Bulk query for %s: %s", self.name, soql)
        for row in self.bulk.query(soql, include_deleted=self.config.get("include_deleted", True)):
            yield {field: parse_value(kind, row.get(field, "")) for field, kind in self.field_types.items()}


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
        return [SalesforceObjectStream(self, name) for name in OBJECTS]


if __name__ == "__main__":
    TapSalesforceBulk.cli()
