"""A real public client (simple-salesforce) works against the sandbox unchanged.

simple-salesforce always builds https:// URLs, so the sandbox serves TLS with a self-signed certificate that
the test's requests session trusts.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce, SalesforceMalformedRequest, format_soql
from simple_salesforce.exceptions import SalesforceOperationError

from local_stack.sandbox.salesforce import SandboxHandle, start_sandbox


@pytest.fixture
def tls_sandbox(tmp_path: Path) -> Iterator[SandboxHandle]:
    with start_sandbox(db_path=tmp_path / "org.sqlite", tls=True) as handle:
        yield handle


@pytest.fixture
def sf(tls_sandbox: SandboxHandle) -> Salesforce:
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides `verify`
    session.verify = str(tls_sandbox.ca_cert)
    token = session.post(
        f"{tls_sandbox.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tls_sandbox.client_id,
            "client_secret": tls_sandbox.client_secret,
        },
        timeout=10,
    ).json()
    return Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session, version="62.0"
    )


def test_bulk2_insert_upsert_and_query(sf: Salesforce, tls_sandbox: SandboxHandle) -> None:
    leads = [{"LastName": f"L{i}", "Company": "Co", "Signup_Id__c": f"sgn_{i}"} for i in range(3)]
    inserted = sf.bulk2.Lead.insert(records=leads, wait=0.05)
    assert inserted[0]["numberRecordsProcessed"] == 3 and inserted[0]["numberRecordsFailed"] == 0

    upserted = sf.bulk2.Lead.upsert(
        records=[
            {"Signup_Id__c": "sgn_1", "Title": "CEO"},
            {"Signup_Id__c": "sgn_9", "LastName": "New", "Company": "Co"},
        ],
        external_id_field="Signup_Id__c",
        wait=0.05,
    )
    assert upserted[0]["numberRecordsFailed"] == 0
    assert tls_sandbox.count("Lead") == 4

    pages = list(
        sf.bulk2.Lead.query("SELECT Signup_Id__c, Title FROM Lead ORDER BY Signup_Id__c", max_records=2)
    )
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert len(pages) == 2
    assert {r["Signup_Id__c"]: r["Title"] for r in rows} == {
        "sgn_0": "",
        "sgn_1": "CEO",
        "sgn_2": "",
        "sgn_9": "",
    }


def test_bulk2_reports_failed_records(sf: Salesforce) -> None:
    result = sf.bulk2.Lead.insert(records=[{"LastName": "No company"}], wait=0.05)
    assert result[0]["numberRecordsFailed"] == 1
    failed = sf.bulk2.Lead.get_failed_records(result[0]["job_id"])
    assert "REQUIRED_FIELD_MISSING" in failed


def test_rest_sobject_create_get_update_and_query(sf: Salesforce) -> None:
    created = sf.Account.create({"Name": "Acme", "Workspace_Id__c": "ws_1"})
    assert created["success"] and created["id"].startswith("001")
    sf.Account.update(created["id"], {"ARR__c": 1200})
    record = sf.Account.get(created["id"])
    assert record["ARR__c"] == 1200.0 and record["Name"] == "Acme"
    sf.Account.upsert("Workspace_Id__c/ws_2", {"Name": "Beta"})
    result = sf.query_all("SELECT Name FROM Account ORDER BY Name")
    assert [r["Name"] for r in result["records"]] == ["Acme", "Beta"]
    assert sf.Account.describe()["keyPrefix"] == "001"


def test_control_endpoints_need_the_sandbox_key_and_health_stays_open(tls_sandbox: SandboxHandle) -> None:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(tls_sandbox.ca_cert)
    url = f"{tls_sandbox.url}/__sandbox"
    assert session.get(f"{url}/health", timeout=5).status_code == 200
    controls = [("faults", {"server_errors": 1}), ("reset", {}), ("expire-sessions", {}), ("seed", {})]
    for action, body in controls:
        refused = session.post(f"{url}/{action}", json=body, timeout=5)
        assert refused.status_code == 401, action
        wrong = session.post(f"{url}/{action}", json=body, headers={"Authorization": "Bearer x"}, timeout=5)
        assert wrong.status_code == 401, action
    assert tls_sandbox.sandbox.faults.server_errors == 0  # the refused call changed nothing
    key = {"Authorization": f"Bearer {tls_sandbox.client_secret}"}
    accepted = session.post(f"{url}/faults", json={"server_errors": 1}, headers=key, timeout=5)
    assert accepted.status_code == 200 and accepted.json()["server_errors"] == 1


def test_soql_parent_fields_nest_under_the_relationship_and_count_answers_total_size(
    sf: Salesforce, tls_sandbox: SandboxHandle
) -> None:
    account = sf.Account.create({"Name": "Acme", "Workspace_Id__c": "ws_1"})["id"]
    sf.Contact.create({"LastName": "Ada", "AccountId": account})
    sf.Contact.create({"LastName": "Orphan"})
    result = sf.query("SELECT Id, LastName, Account.Name FROM Contact WHERE Account.Name = 'Acme'")
    (ada,) = result["records"]
    assert ada["Account"] == {
        "attributes": {"type": "Account", "url": f"/services/data/v62.0/sobjects/Account/{account}"},
        "Name": "Acme",
    }
    orphan = sf.query("SELECT LastName, Account.Name FROM Contact ORDER BY Account.Name NULLS FIRST")
    assert [(r["LastName"], r["Account"] and r["Account"]["Name"]) for r in orphan["records"]] == [
        ("Orphan", None),
        ("Ada", "Acme"),
    ]

    sf.bulk2.Lead.insert(records=[{"LastName": f"L{i}", "Company": "Co"} for i in range(3)], wait=0.05)
    assert sf.query("SELECT COUNT() FROM Lead") == {"totalSize": 3, "done": True, "records": []}
    assert sf.query("SELECT COUNT() FROM Lead WHERE LastName = 'L1'")["totalSize"] == 1

    rows = list(
        csv.reader(io.StringIO(next(sf.bulk2.Contact.query("SELECT LastName, Account.Name FROM Contact"))))
    )
    assert rows[0] == ["LastName", "Account.Name"] and sorted(rows[1:]) == [["Ada", "Acme"], ["Orphan", ""]]


def test_soql_date_literals_on_date_and_datetime_fields(sf: Salesforce, tls_sandbox: SandboxHandle) -> None:
    now = datetime.now(UTC)
    days = {"today": 0, "yesterday": 1, "old": 10}
    tls_sandbox.seed(
        {
            "Lead": [
                {
                    "LastName": name,
                    "Company": "Co",
                    "Last_Active_At__c": (now - timedelta(days=ago)).isoformat(timespec="seconds"),
                }
                for name, ago in days.items()
            ],
            "Opportunity": [
                {
                    "Name": name,
                    "StageName": "Prospecting",
                    "CloseDate": (now - timedelta(days=ago)).date().isoformat(),
                }
                for name, ago in days.items()
            ],
        }
    )

    def names(soql: str) -> list[str]:
        return sorted(r.get("LastName") or r.get("Name") for r in sf.query_all(soql)["records"])

    for obj, field, name in [("Lead", "Last_Active_At__c", "LastName"), ("Opportunity", "CloseDate", "Name")]:
        assert names(f"SELECT {name} FROM {obj} WHERE {field} = TODAY") == ["today"]
        assert names(f"SELECT {name} FROM {obj} WHERE {field} = YESTERDAY") == ["yesterday"]
        assert names(f"SELECT {name} FROM {obj} WHERE {field} = LAST_N_DAYS:3") == ["today", "yesterday"]
        assert names(f"SELECT {name} FROM {obj} WHERE {field} < LAST_N_DAYS:3") == ["old"]
        assert names(f"SELECT {name} FROM {obj} WHERE {field} > YESTERDAY") == ["today"]
        assert names(f"SELECT {name} FROM {obj} WHERE {field} <= YESTERDAY") == ["old", "yesterday"]
        assert names(f"SELECT {name} FROM {obj} WHERE {field} = NEXT_N_DAYS:5") == []


def test_soql_refuses_a_date_value_for_a_datetime_field(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query("SELECT Id FROM Lead WHERE CreatedDate > 2026-01-01")
    assert refused.value.content == [
        {
            "errorCode": "INVALID_FIELD",
            "message": "value of filter criterion for field 'CreatedDate' must be of type dateTime "
            "and should not be enclosed in quotes",
        }
    ]


def test_soql_string_literal_escapes(sf: Salesforce) -> None:
    companies = ["O'Brien & Co", "two\nlines", "back\\slash", "50% off_"]
    for i, company in enumerate(companies):
        sf.Lead.create({"LastName": f"L{i}", "Company": company})
    for company in companies:  # format_soql escapes ' \ and newlines as Salesforce's grammar does
        found = sf.query(format_soql("SELECT Company FROM Lead WHERE Company = {}", company))["records"]
        assert [r["Company"] for r in found] == [company]
    assert sf.query("SELECT LastName FROM Lead WHERE Company = 'O\\'Brien & Co'")["totalSize"] == 1
    assert sf.query("SELECT LastName FROM Lead WHERE Company = 'two\\nlines'")["totalSize"] == 1
    assert sf.query("SELECT LastName FROM Lead WHERE Company LIKE '50\\% off\\_'")["totalSize"] == 1
    assert sf.query("SELECT LastName FROM Lead WHERE Company LIKE '5%'")["totalSize"] == 1
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query("SELECT Id FROM Lead WHERE Company = 'a\\qb'")
    assert refused.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_an_invalid_email_fails_the_record_with_invalid_email_address(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Lead.create({"LastName": "L", "Company": "Co", "Email": "not-an-email"})
    assert refused.value.status == 400
    assert refused.value.content == [
        {
            "errorCode": "INVALID_EMAIL_ADDRESS",
            "message": "Email: invalid email address: not-an-email",
            "fields": ["Email"],
        }
    ]

    result = sf.bulk2.Contact.insert(
        records=[{"LastName": "Ok", "Email": "ok@example.com"}, {"LastName": "Bad", "Email": "bad@nowhere"}],
        wait=0.05,
    )
    assert result[0]["numberRecordsProcessed"] == 2 and result[0]["numberRecordsFailed"] == 1
    (failed,) = csv.DictReader(io.StringIO(sf.bulk2.Contact.get_failed_records(result[0]["job_id"])))
    assert failed["sf__Error"] == "INVALID_EMAIL_ADDRESS:Email: invalid email address: bad@nowhere:Email --"
    assert failed["LastName"] == "Bad"


def test_ingest_result_paths_as_clients_spell_them(sf: Salesforce, tls_sandbox: SandboxHandle) -> None:
    tls_sandbox.fail_jobs(1)
    leads = [{"LastName": f"L{i}", "Company": "Co"} for i in range(2)]
    with pytest.raises(SalesforceOperationError, match="InternalServerError"):
        sf.bulk2.Lead.insert(records=leads, wait=0.05)
    (job,) = [j for j in requests_get(sf, "jobs/ingest").json()["records"] if j["state"] == "Failed"]
    unprocessed = list(csv.DictReader(io.StringIO(sf.bulk2.Lead.get_unprocessed_records(job["id"]))))
    assert [r["LastName"] for r in unprocessed] == ["L0", "L1"]
    for kind in ["unprocessedrecords/", "unprocessedRecords", "successfulResults/", "failedResults/"]:
        response = requests_get(sf, f"jobs/ingest/{job['id']}/{kind}")
        assert response.status_code == 200 and response.headers["Content-Type"] == "text/csv", kind


def requests_get(sf: Salesforce, path: str) -> requests.Response:
    """A plain GET on the REST base with the client's session (paths simple-salesforce has no call for)."""
    return sf.session.get(f"{sf.base_url}{path}", headers=sf.headers, timeout=10)


def test_composite_sobject_collections_create_and_update(sf: Salesforce, tls_sandbox: SandboxHandle) -> None:
    def collection(method: str, records: list[dict], all_or_none: bool = False) -> list[dict]:
        body = {"allOrNone": all_or_none, "records": records}
        return sf.restful("composite/sobjects", method=method, data=json.dumps(body))

    created = collection(
        "POST",
        [
            {"attributes": {"type": "Account"}, "Name": "Acme"},
            {"attributes": {"type": "Lead"}, "LastName": "Ada", "Company": "Co"},
            {"attributes": {"type": "Lead"}, "LastName": "No company"},
        ],
    )
    assert [r["success"] for r in created] == [True, True, False]
    assert created[0]["id"].startswith("001") and created[0]["errors"] == []
    assert created[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING" and "id" not in created[2]
    assert tls_sandbox.count("Lead") == 1

    rolled_back = collection(
        "POST",
        [
            {"attributes": {"type": "Lead"}, "LastName": "Kept?", "Company": "Co"},
            {"attributes": {"type": "Lead"}, "LastName": "Bad", "Company": "Co", "Email": "nope"},
        ],
        all_or_none=True,
    )
    assert [r["success"] for r in rolled_back] == [False, False]
    assert rolled_back[0]["errors"] == [
        {
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "message": "Record rolled back because not all records were valid and the request was using "
            "AllOrNone header",
            "fields": [],
        }
    ]
    assert rolled_back[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert tls_sandbox.count("Lead") == 1

    updated = collection(
        "PATCH",
        [
            {"attributes": {"type": "Account"}, "id": created[0]["id"], "Name": "Acme Corp"},
            {"attributes": {"type": "Lead"}, "Id": created[1]["id"], "Title": "CEO"},
        ],
        all_or_none=True,
    )
    assert updated == [
        {"id": created[0]["id"], "success": True, "errors": []},
        {"id": created[1]["id"], "success": True, "errors": []},
    ]
    assert sf.Account.get(created[0]["id"])["Name"] == "Acme Corp"
    assert sf.Lead.get(created[1]["id"])["Title"] == "CEO"

    with pytest.raises(SalesforceMalformedRequest) as refused:
        collection("POST", [{"attributes": {"type": "Lead"}, "LastName": "x", "Company": "Co"}] * 201)
    assert refused.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert tls_sandbox.count("Lead") == 1
