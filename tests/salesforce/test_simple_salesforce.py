"""A real public client (simple-salesforce) works against the sandbox unchanged.

simple-salesforce always builds https:// URLs, so the sandbox serves TLS with a self-signed certificate that
the test's requests session trusts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce

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
