"""The Salesforce client against the sandbox over real HTTP: auth, resilience, Bulk 2.0 ingest and query."""

from __future__ import annotations

import itertools
import socket
import time

import pytest
import tenacity
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sf_helpers import MANAGER_ID, credentials_for, fast_client, leads

from local_stack.sandbox.salesforce import SandboxHandle
from platform_assets.integrations.salesforce.client import (
    SalesforceClient,
    SalesforceCredentials,
    SalesforceError,
    SalesforceUnavailable,
)


def test_client_credentials_flow_authenticates_and_reads_limits(client: SalesforceClient) -> None:
    limits = client.limits()
    assert limits["DailyApiRequests"]["Max"] > limits["DailyApiRequests"]["Remaining"] >= 0
    assert client.instance_url.startswith("http://127.0.0.1:")


def test_limits_count_every_api_call(client: SalesforceClient) -> None:
    first = client.limits()["DailyApiRequests"]["Remaining"]
    client.describe("Lead")
    assert client.limits()["DailyApiRequests"]["Remaining"] == first - 2


def test_api_usage_is_read_from_the_limit_info_header_of_every_response(client: SalesforceClient) -> None:
    client.describe("Lead")
    after_describe = client.api_usage
    client.describe("Lead")

    assert after_describe["Max"] > after_describe["Remaining"] >= 0
    assert client.api_usage == {"Max": after_describe["Max"], "Remaining": after_describe["Remaining"] - 1}
    assert client.limits()["DailyApiRequests"]["Remaining"] == client.api_usage["Remaining"]


def test_wrong_client_secret_fails_with_oauth_error_and_hint(sandbox: SandboxHandle) -> None:
    creds = SalesforceCredentials(login_url=sandbox.url, client_id=sandbox.client_id, client_secret="wrong")
    with pytest.raises(SalesforceError, match=r"invalid_client.*SALESFORCE_CLIENT_ID"):
        fast_client(creds).limits()


def test_jwt_bearer_flow_authenticates_with_registered_key(sandbox: SandboxHandle) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    sandbox.register_jwt_key("jwt-app", public_pem)
    creds = SalesforceCredentials(
        login_url=sandbox.url, client_id="jwt-app", username="etl@example.com", private_key=private_pem
    )
    assert fast_client(creds).describe("Account")["keyPrefix"] == "001"
    assert "private_key" not in repr(creds) and "BEGIN" not in repr(creds)


def test_jwt_signed_by_unregistered_key_is_rejected(sandbox: SandboxHandle) -> None:
    trusted, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    sandbox.register_jwt_key(
        "jwt-app",
        trusted.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )
    creds = SalesforceCredentials(
        login_url=sandbox.url,
        client_id="jwt-app",
        username="etl@example.com",
        private_key=other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )
    with pytest.raises(SalesforceError, match="invalid_grant"):
        fast_client(creds).limits()


def test_credentials_need_a_secret_or_a_key() -> None:
    with pytest.raises(ValueError, match="SALESFORCE_CLIENT_SECRET"):
        SalesforceCredentials(login_url="https://login.salesforce.com", client_id="x")


def test_describe_lists_contract_fields_with_flags(client: SalesforceClient) -> None:
    fields = {f["name"]: f for f in client.describe("Lead")["fields"]}
    assert fields["Signup_Id__c"]["externalId"] and fields["Signup_Id__c"]["unique"]
    assert fields["LastName"]["nillable"] is False and fields["LastName"]["createable"]
    assert fields["OwnerId"]["type"] == "reference" and fields["OwnerId"]["referenceTo"] == ["User"]
    assert fields["SystemModstamp"]["createable"] is False


def test_session_expiry_mid_ingest_reauthenticates_and_completes(
    client: SalesforceClient, sandbox: SandboxHandle
) -> None:
    sandbox.slow_jobs(0.3)
    created: list[str] = []

    def expire_after_first_job(job_id: str) -> None:
        created.append(job_id)
        sandbox.expire_sessions()

    result = client.ingest(
        "Lead", "insert", leads(6), max_records_per_job=3, on_job_created=expire_after_first_job
    )
    assert len(result.successful) == 6 and not result.failed
    assert result.job_ids == created and len(created) == 2
    assert sandbox.counters()["token"] == 3  # the first login plus one re-login per expiry


def test_429_burst_with_retry_after_is_waited_out(make_client, sandbox: SandboxHandle) -> None:
    client = make_client(backoff_max=2.0)
    client.limits()
    sandbox.rate_limit(2, retry_after=1)
    started = time.monotonic()
    result = client.ingest("Lead", "insert", leads(2))
    assert len(result.successful) == 2
    assert time.monotonic() - started >= 2.0  # two Retry-After: 1 honoured
    assert sandbox.counters()["ingest_create"] == 3


def test_5xx_responses_are_retried(client: SalesforceClient, sandbox: SandboxHandle) -> None:
    client.limits()
    sandbox.server_errors(3, status=500, path="/batches")
    result = client.ingest("Lead", "insert", leads(3))
    assert len(result.successful) == 3
    assert sandbox.counters()["ingest_upload"] == 4


def test_request_limit_exceeded_is_retried(client: SalesforceClient, sandbox: SandboxHandle) -> None:
    client.limits()
    sandbox.request_limit_exceeded(2)
    assert client.describe("Task")["name"] == "Task"


def test_persistent_5xx_exhausts_bounded_retries(make_client, sandbox: SandboxHandle) -> None:
    client = make_client(max_attempts=3)
    client.limits()
    sandbox.server_errors(10)
    with pytest.raises(SalesforceUnavailable, match=r"after 3 attempts.*503"):
        client.describe("Lead")


def test_unreachable_host_raises_unavailable_after_bounded_retries() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    creds = SalesforceCredentials(login_url=f"http://127.0.0.1:{port}", client_id="c", client_secret="s")
    client = fast_client(creds, max_attempts=3)
    with pytest.raises(
        SalesforceUnavailable, match=f"127.0.0.1:{port} unavailable after 3 attempts.*Connection"
    ):
        client.limits()
    assert client.api_calls == 3


def test_failed_job_returns_its_records_as_unprocessed(
    client: SalesforceClient, sandbox: SandboxHandle
) -> None:
    sandbox.fail_jobs(1, message="InternalServerError : boom")
    result = client.ingest("Lead", "insert", leads(4))
    assert [r["Signup_Id__c"] for r in result.unprocessed] == [f"sgn_{i:06d}" for i in range(4)]
    assert not result.successful and not result.failed
    assert result.job_errors == {result.job_ids[0]: "InternalServerError : boom"}


def test_per_record_failures_come_back_with_salesforce_errors(client: SalesforceClient) -> None:
    records = [
        *leads(2),
        {"LastName": "No company", "Signup_Id__c": "sgn_x"},
        {"LastName": "Bad owner", "Company": "C", "OwnerId": "0058d0000000999AAA"},
    ]
    result = client.ingest("Lead", "insert", records)
    assert len(result.successful) == 2 and all(r["sf__Created"] == "true" for r in result.successful)
    errors = {r["LastName"]: r["sf__Error"] for r in result.failed}
    assert errors["No company"].startswith("REQUIRED_FIELD_MISSING:Required fields are missing: [Company]")
    assert errors["Bad owner"].startswith("INVALID_CROSS_REFERENCE_KEY")


def test_injected_share_of_record_failures(client: SalesforceClient, sandbox: SandboxHandle) -> None:
    sandbox.fail_records(0.25, error="FIELD_CUSTOM_VALIDATION_EXCEPTION", message="nope")
    result = client.ingest("Lead", "insert", leads(8))
    assert len(result.failed) == 2 and len(result.successful) == 6
    assert all(r["sf__Error"].startswith("FIELD_CUSTOM_VALIDATION_EXCEPTION:nope") for r in result.failed)


def test_records_are_split_into_jobs_by_count(client: SalesforceClient, sandbox: SandboxHandle) -> None:
    jobs: list[str] = []
    result = client.ingest("Lead", "insert", leads(25), max_records_per_job=10, on_job_created=jobs.append)
    assert len(jobs) == 3 and result.job_ids == jobs
    assert len(result.successful) == 25
    assert sandbox.counters()["ingest_upload"] == 3  # one upload per job


def test_records_are_split_into_jobs_by_csv_size(client: SalesforceClient) -> None:
    client.max_upload_bytes = 400
    result = client.ingest("Lead", "insert", leads(12))
    assert len(result.job_ids) > 1 and len(result.successful) == 12


def test_upsert_by_external_id_creates_then_updates(client: SalesforceClient, sandbox: SandboxHandle) -> None:
    first = client.ingest("Lead", "upsert", leads(3), external_id_field="Signup_Id__c")
    second = client.ingest(
        "Lead",
        "upsert",
        [{"Signup_Id__c": "sgn_000001", "Title": "CTO"}, *leads(1, start=5)],
        external_id_field="Signup_Id__c",
    )
    assert [r["sf__Created"] for r in first.successful] == ["true"] * 3
    assert [r["sf__Created"] for r in second.successful] == ["false", "true"]
    assert sandbox.count("Lead") == 4
    titles = {r["Signup_Id__c"]: r["Title"] for r in client.query("SELECT Signup_Id__c, Title FROM Lead")}
    assert titles["sgn_000001"] == "CTO"


def test_none_values_clear_fields(client: SalesforceClient) -> None:
    result = client.ingest("Lead", "insert", [{**leads(1)[0], "Title": "CEO"}])
    lead_id = result.successful[0]["sf__Id"]
    client.ingest("Lead", "update", [{"Id": lead_id, "Title": None}])
    assert list(client.query(f"SELECT Title FROM Lead WHERE Id = '{lead_id}'")) == [{"Title": ""}]


def test_job_results_recovers_an_existing_job(client: SalesforceClient, sandbox: SandboxHandle) -> None:
    jobs: list[str] = []
    original = client.ingest("Lead", "insert", leads(3), on_job_created=jobs.append)
    recovered = fast_client(credentials_for(sandbox)).job_results(jobs[0])
    assert recovered.successful == original.successful


def test_query_pages_with_locators(client: SalesforceClient, sandbox: SandboxHandle) -> None:
    client.ingest("Lead", "insert", leads(23))
    rows = list(client.query("SELECT Id, Signup_Id__c FROM Lead ORDER BY Signup_Id__c", max_records=5))
    assert [r["Signup_Id__c"] for r in rows] == [f"sgn_{i:06d}" for i in range(23)]
    assert sandbox.counters()["query_results"] == 5


def test_query_with_bad_soql_names_the_problem(client: SalesforceClient) -> None:
    with pytest.raises(SalesforceError, match=r"INVALID_FIELD.*Nope__c"):
        list(client.query("SELECT Id, Nope__c FROM Lead"))


def test_references_resolve_against_seeded_records(client: SalesforceClient, seeded: SandboxHandle) -> None:
    accounts = {
        r["Workspace_Id__c"]: r["Id"] for r in client.query("SELECT Id, Workspace_Id__c FROM Account")
    }
    result = client.ingest(
        "Opportunity",
        "insert",
        [
            {
                "Name": "Acme 1 - New Business",
                "AccountId": accounts["ws_000001"],
                "StageName": "Prospecting",
                "CloseDate": "2026-06-30",
                "Amount": 1200,
                "OwnerId": MANAGER_ID,
                "Workspace_Id__c": "ws_000001",
            }
        ],
    )
    assert len(result.successful) == 1, result.failed


def test_job_polls_keep_the_base_interval_first_then_back_off_to_ten_seconds(sandbox: SandboxHandle) -> None:
    client = SalesforceClient(credentials_for(sandbox), poll_interval=0.5)
    waits = []
    for attempt in range(1, 16):
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        waits.append(client._poll_wait(state))

    assert waits[:5] == [0.5] * 5
    assert waits[5:8] == [0.75, 1.125, 1.6875]
    assert all(later >= earlier for earlier, later in itertools.pairwise(waits))
    assert waits[-1] == 10.0
