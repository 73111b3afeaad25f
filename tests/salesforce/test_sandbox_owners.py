"""The sandbox's owner checks and User fields: OwnerId must name an active User (Salesforce's
INACTIVE_OWNER_OR_USER), Users carry Department and Territory__c, and an org file written before a field
existed gets the column when the sandbox opens it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sf_helpers import credentials_for, fast_client

from local_stack.sandbox.salesforce import SandboxHandle, start_sandbox
from local_stack.sandbox.salesforce.schema import normalize_id

ACTIVE, INACTIVE = "005000000000011", "005000000000012"


def test_owner_must_be_an_active_user(sandbox: SandboxHandle) -> None:
    users = [
        {
            "Id": ACTIVE,
            "LastName": "On",
            "Email": "on@example.com",
            "Department": "Sales",
            "Territory__c": "EMEA",
        },
        {"Id": INACTIVE, "LastName": "Off", "Email": "off@example.com", "IsActive": False},
    ]
    assert sandbox.seed({"User": users})["User"]["failed"] == 0
    client = fast_client(credentials_for(sandbox))
    task = {"Subject": "Call", "Status": "Not Started"}
    result = client.ingest(
        "Task",
        "insert",
        [
            {**task, "Platform_Key__c": "a", "OwnerId": ACTIVE},
            {**task, "Platform_Key__c": "b", "OwnerId": INACTIVE},
            {**task, "Platform_Key__c": "c", "OwnerId": "00T000000000001"},  # not a User
        ],
    )
    assert [r["Platform_Key__c"] for r in result.successful] == ["a"]
    errors = {r["Platform_Key__c"]: r["sf__Error"].split(":")[0] for r in result.failed}
    assert errors == {"b": "INACTIVE_OWNER_OR_USER", "c": "INVALID_CROSS_REFERENCE_KEY"}
    (user,) = client.query(f"SELECT Department, Territory__c FROM User WHERE Id = '{normalize_id(ACTIVE)}'")
    assert user == {"Department": "Sales", "Territory__c": "EMEA"}


def test_an_older_org_file_gets_new_fields_as_empty_columns(tmp_path: Path) -> None:
    path = tmp_path / "org.sqlite"
    with sqlite3.connect(path) as connection:  # a User table from before Department and Territory__c
        connection.execute(
            'CREATE TABLE "sobject_User" ("Id" TEXT PRIMARY KEY, "Username" TEXT, "FirstName" TEXT, '
            '"LastName" TEXT, "Email" TEXT, "Title" TEXT, "IsActive" INTEGER, "CreatedDate" TEXT, '
            '"LastModifiedDate" TEXT, "SystemModstamp" TEXT, "IsDeleted" INTEGER)'
        )
        connection.execute(
            "INSERT INTO sobject_User VALUES ('0058d0000000001AAA', 'old@x', NULL, 'Old', 'old@x.example', "
            "NULL, 1, '2026-01-01T00:00:00.000+0000', '2026-01-01T00:00:00.000+0000', "
            "'2026-01-01T00:00:00.000+0000', 0)"
        )
    with start_sandbox(db_path=path, pubsub_port=None) as handle:
        client = fast_client(credentials_for(handle))
        rows = list(client.query("SELECT Username, Department, Territory__c FROM User"))
    assert rows == [{"Username": "old@x", "Department": "", "Territory__c": ""}]
