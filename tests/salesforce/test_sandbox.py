"""The Salesforce sandbox behaves like an org: ids, validation, job state machine, SOQL, persistence."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest
import requests
from sf_helpers import MANAGER_ID, credentials_for, fast_client, leads

from local_stack.sandbox.salesforce import SandboxHandle, admin, start_sandbox
from local_stack.sandbox.salesforce.schema import checksum_suffix, forget_added_fields, normalize_id
from platform_assets.integrations.salesforce.client import SalesforceClient


def test_ids_are_18_char_with_key_prefix_and_case_safe_suffix(client: SalesforceClient) -> None:
    record_id = client.ingest("Lead", "insert", leads(1)).successful[0]["sf__Id"]
    assert len(record_id) == 18 and record_id.startswith("00Q")
    assert record_id[15:] == checksum_suffix(record_id[:15])
    assert normalize_id(record_id[:15]) == record_id


def test_known_salesforce_id_checksum() -> None:
    # A documented example: 001A0000006Vm9r -> 001A0000006Vm9rIAC
    assert normalize_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_unknown_column_fails_the_whole_job(client: SalesforceClient) -> None:
    result = client.ingest("Lead", "insert", [{**leads(1)[0], "Shoe_Size__c": "42"}])
    assert not result.successful and len(result.unprocessed) == 1
    assert "Field name not found : Shoe_Size__c" in next(iter(result.job_errors.values()))


def test_insert_with_duplicate_external_id_fails_that_record(client: SalesforceClient) -> None:
    client.ingest("Lead", "insert", leads(1))
    result = client.ingest("Lead", "insert", leads(2))
    assert len(result.successful) == 1
    assert result.failed[0]["sf__Error"].startswith("DUPLICATE_VALUE:duplicate value found: Signup_Id__c")


def test_update_of_missing_and_malformed_ids(client: SalesforceClient) -> None:
    missing = "00Q8d0000000999" + checksum_suffix("00Q8d0000000999")
    result = client.ingest(
        "Lead", "update", [{"Id": missing, "Title": "x"}, {"Id": "not-an-id", "Title": "y"}]
    )
    codes = sorted(r["sf__Error"].split(":")[0] for r in result.failed)
    assert codes == ["MALFORMED_ID", "NOT_FOUND"]


def test_bad_reference_fails_with_invalid_cross_reference_key(client: SalesforceClient, seeded) -> None:
    account_id = next(client.query("SELECT Id FROM Account LIMIT 1"))["Id"]
    result = client.ingest(
        "Contact",
        "insert",
        [
            {"LastName": "Ok", "AccountId": account_id, "OwnerId": MANAGER_ID},
            {"LastName": "Wrong type", "AccountId": MANAGER_ID},  # a User id where an Account is expected
        ],
    )
    assert len(result.successful) == 1
    assert result.failed[0]["sf__Error"].startswith("INVALID_CROSS_REFERENCE_KEY")


def test_relationship_column_resolves_by_external_id(client: SalesforceClient, seeded) -> None:
    result = client.ingest(
        "Opportunity",
        "upsert",
        [
            {
                "Workspace_Id__c": "ws_000002",
                "Name": "Acme 2",
                "StageName": "Prospecting",
                "CloseDate": "2026-07-01",
                "Account.Workspace_Id__c": "ws_000002",
            }
        ],
        external_id_field="Workspace_Id__c",
    )
    assert len(result.successful) == 1, result.failed
    rows = list(client.query("SELECT AccountId FROM Opportunity"))
    accounts = {
        r["Workspace_Id__c"]: r["Id"] for r in client.query("SELECT Id, Workspace_Id__c FROM Account")
    }
    assert rows == [{"AccountId": accounts["ws_000002"]}]


def test_relationship_column_with_unknown_external_id_fails_that_record(
    client: SalesforceClient, seeded
) -> None:
    opportunity = {"Name": "Acme", "StageName": "Prospecting", "CloseDate": "2026-07-01"}
    result = client.ingest(
        "Opportunity",
        "insert",
        [
            {**opportunity, "Account.Workspace_Id__c": "ws_000002"},
            {**opportunity, "Account.Workspace_Id__c": "ws_missing"},
        ],
    )
    assert len(result.successful) == 1
    assert result.failed[0]["sf__Error"].startswith(
        "INVALID_FIELD:Foreign key external ID: ws_missing not found for field Workspace_Id__c in entity "
        "Account"
    )


def test_system_modstamp_advances_on_every_change(client: SalesforceClient) -> None:
    client.ingest("Lead", "insert", leads(2))
    before = {
        r["Signup_Id__c"]: r["SystemModstamp"]
        for r in client.query("SELECT Signup_Id__c, SystemModstamp FROM Lead")
    }
    client.ingest(
        "Lead", "upsert", [{"Signup_Id__c": "sgn_000000", "Title": "VP"}], external_id_field="Signup_Id__c"
    )
    changed = list(
        client.query(
            f"SELECT Signup_Id__c, LastModifiedDate FROM Lead WHERE SystemModstamp > {before['sgn_000000']}"
        )
    )
    assert [r["Signup_Id__c"] for r in changed] == ["sgn_000000"]
    assert changed[0]["LastModifiedDate"] > before["sgn_000000"]


def test_soql_where_order_and_limit(client: SalesforceClient) -> None:
    client.ingest("Lead", "insert", leads(10))
    rows = list(
        client.query(
            "SELECT Signup_Id__c FROM Lead WHERE Product_Usage_Score__c >= 0.3 "
            "AND (Title = null OR Company LIKE 'Co%') "
            "ORDER BY Product_Usage_Score__c DESC LIMIT 3"
        )
    )
    assert [r["Signup_Id__c"] for r in rows] == ["sgn_000009", "sgn_000008", "sgn_000007"]


def test_delete_hides_records_from_query_but_not_query_all(client: SalesforceClient, sandbox) -> None:
    ids = [r["sf__Id"] for r in client.ingest("Lead", "insert", leads(3)).successful]
    assert len(client.ingest("Lead", "delete", [{"Id": ids[0]}]).successful) == 1
    assert len(list(client.query("SELECT Id FROM Lead"))) == 2
    assert sandbox.count("Lead", include_deleted=True) == 3


def test_rest_query_pages_like_salesforce(client: SalesforceClient, sandbox: SandboxHandle) -> None:
    client.ingest("Lead", "insert", leads(3))
    token = requests.post(
        f"{sandbox.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
        timeout=10,
    ).json()["access_token"]
    body = requests.get(
        f"{sandbox.url}/services/data/v62.0/query",
        params={"q": "SELECT Id, IsConverted FROM Lead"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    assert body["totalSize"] == 3 and body["done"] is True
    assert body["records"][0]["attributes"]["type"] == "Lead" and body["records"][0]["IsConverted"] is False


def test_error_bodies_are_salesforce_json_arrays(sandbox: SandboxHandle) -> None:
    response = requests.get(
        f"{sandbox.url}/services/data/v62.0/limits", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert response.status_code == 401
    assert response.json() == [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]


def test_slow_jobs_stay_in_progress_while_polled(make_client, sandbox: SandboxHandle) -> None:
    sandbox.slow_jobs(0.5)
    client = make_client()
    started = time.monotonic()
    assert len(client.ingest("Lead", "insert", leads(1)).successful) == 1
    assert time.monotonic() - started >= 0.5
    assert sandbox.counters()["ingest_info"] >= 2


def test_records_persist_across_restart(tmp_path: Path) -> None:
    db = tmp_path / "org.sqlite"
    with start_sandbox(db_path=db) as first:
        inserted = fast_client(credentials_for(first)).ingest("Lead", "insert", leads(4)).successful
    with start_sandbox(db_path=db) as second:
        client = fast_client(credentials_for(second))
        rows = {r["Id"] for r in client.query("SELECT Id FROM Lead")}
        assert rows == {r["sf__Id"] for r in inserted}
        new_id = client.ingest("Lead", "insert", leads(1, start=10)).successful[0]["sf__Id"]
        assert new_id not in rows  # the id sequence carries on


def test_job_results_written_by_an_older_sandbox_survive_the_upgrade(tmp_path: Path) -> None:
    """Org files from before _ingest_job_data kept the CSVs as columns of _ingest_jobs."""
    db = tmp_path / "org.sqlite"
    with start_sandbox(db_path=db) as first:
        job_id = fast_client(credentials_for(first)).ingest("Lead", "insert", leads(2)).job_ids[0]
    with sqlite3.connect(db) as old:  # rewrite the file in the old layout
        old.execute("ALTER TABLE _ingest_jobs ADD COLUMN upload BLOB")
        old.execute("ALTER TABLE _ingest_jobs ADD COLUMN successful TEXT")
        for kind in ("upload", "successful"):
            old.execute(
                f"UPDATE _ingest_jobs SET {kind} = "
                f"(SELECT content FROM _ingest_job_data d WHERE d.id = _ingest_jobs.id AND d.kind = '{kind}')"
            )
        old.execute("DROP TABLE _ingest_job_data")
    with start_sandbox(db_path=db) as second:
        result = fast_client(credentials_for(second)).job_results(job_id)
    assert sorted(r["Signup_Id__c"] for r in result.successful) == ["sgn_000000", "sgn_000001"]


def test_seed_rejects_unknown_fields_with_the_field_named(sandbox: SandboxHandle) -> None:
    with pytest.raises(Exception, match="Shoe_Size__c"):
        sandbox.seed({"Lead": [{"LastName": "x", "Company": "y", "Shoe_Size__c": 3}]})


def test_bulk_upsert_of_10k_changes_is_one_job_and_one_upload(client: SalesforceClient, sandbox) -> None:
    sandbox.seed({"Lead": leads(20_000)})
    changes = [{"Signup_Id__c": f"sgn_{i:06d}", "Title": "Changed"} for i in range(0, 20_000, 2)]
    result = client.ingest("Lead", "upsert", changes, external_id_field="Signup_Id__c")
    assert len(result.successful) == 10_000 and not result.failed
    assert sandbox.counters()["ingest_upload"] == 1


@pytest.mark.integration
def test_cli_serves_seeded_org_and_admin_endpoints(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text('{"Lead": [{"LastName": "Seeded", "Company": "Co", "Signup_Id__c": "sgn_1"}]}')
    with socket_port() as port:
        pass
    env = {**os.environ, "PLATFORM_LOCAL_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local_stack.sandbox.salesforce",
            "--port",
            str(port),
            "--pubsub-port",
            "0",
            "--db",
            str(tmp_path / "org.sqlite"),
            "--seed-json",
            str(seed),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for line in process.stdout:
            if "listening on" in line:
                break
        admin(url, "faults", {"server_errors": 1})
        client = fast_client(credentials_for_url(url))
        assert [r["LastName"] for r in client.query("SELECT LastName FROM Lead")] == ["Seeded"]
        assert admin(url, "counters")["endpoints"]["query_create"] == 2  # one 503, one retry
    finally:
        process.terminate()
        process.wait(timeout=20)


def credentials_for_url(url: str):
    from platform_assets.environment import SANDBOX_SALESFORCE_CLIENT_ID, SANDBOX_SALESFORCE_CLIENT_SECRET
    from platform_assets.integrations.salesforce.client import SalesforceCredentials

    return SalesforceCredentials(url, SANDBOX_SALESFORCE_CLIENT_ID, SANDBOX_SALESFORCE_CLIENT_SECRET)


class socket_port:
    """A free loopback port (released on exit, for a subprocess to bind)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_sample_company_org_seeds_with_references_resolved(client: SalesforceClient, sandbox) -> None:
    from local_stack.sandbox.salesforce import sample_company_org

    data = sample_company_org(0.2, 7)
    report = sandbox.seed(data)
    assert all(entry["failed"] == 0 for entry in report.values()), report
    owners = {r["OwnerId"] for r in client.query("SELECT OwnerId FROM Account")}
    users = {r["Id"] for r in client.query("SELECT Id FROM User")}
    assert owners and owners <= users
    orphans = list(client.query("SELECT Id FROM Opportunity WHERE AccountId = null"))
    assert orphans == [] and sandbox.count("Opportunity") == len(data["Opportunity"])


def test_case_and_a_custom_object_take_bulk_jobs_and_a_field_added_at_run_time_survives_restart(
    tmp_path: Path, added_fields: None
) -> None:
    db = tmp_path / "org.sqlite"
    with start_sandbox(db_path=db) as org, start_sandbox(db_path=tmp_path / "other.sqlite") as other:
        client = fast_client(credentials_for(org))
        client.ingest("Account", "insert", [{"Name": "Acme", "Workspace_Id__c": "ws_1"}])
        made = client.ingest(
            "Subscription__c",
            "insert",
            [{"Name": "Pro", "Account__r.Workspace_Id__c": "ws_1", "Discount__c": 5}],
        )
        assert not made.failed, made.failed
        client.ingest("Case", "insert", [{"Subject": "Down", "Priority": "High"}])
        keyless = requests.post(
            f"{org.url}/__sandbox/fields", json={"object": "Case", "name": "X__c"}, timeout=10
        )
        assert keyless.status_code == 401
        for bad, reason in [
            ({"object": "Nope__c", "name": "X__c"}, "no sObject 'Nope__c'"),
            ({"object": "Case", "name": "X__c", "type": "blob"}, "unknown field type 'blob'"),
            ({"object": "Case", "name": "Subject", "type": "int"}, "Case.Subject exists already"),
        ]:
            with pytest.raises(urllib.error.HTTPError) as error:
                admin(org.url, "fields", bad)
            assert error.value.code == 400 and reason in error.value.read().decode()

        admin(org.url, "fields", {"object": "Case", "name": "Severity__c", "type": "picklist", "length": 40})
        org.add_field("Subscription__c", "Seats_Used__c", "int")
        client.ingest("Case", "insert", [{"Subject": "Slow", "Severity__c": "Sev2"}])
        assert {
            r["Subject"]: r["Severity__c"] for r in client.query("SELECT Subject, Severity__c FROM Case")
        } == {
            "Down": "",  # Bulk CSV: empty = null
            "Slow": "Sev2",
        }
        # Another org of this process has the column too (the catalog is the process's).
        assert list(fast_client(credentials_for(other)).query("SELECT Id, Severity__c FROM Case")) == []
    forget_added_fields()  # a new process: the fields come back from the org's file
    with start_sandbox(db_path=db) as again:
        client = fast_client(credentials_for(again))
        fields = {f["name"]: f["type"] for f in client.describe("Subscription__c")["fields"]}
        assert fields["Seats_Used__c"] == "int" and fields["Discount__c"] == "percent"
        assert [
            r["Severity__c"] for r in client.query("SELECT Severity__c FROM Case WHERE Subject = 'Slow'")
        ] == ["Sev2"]
