"""The sync state SQL on the Snowflake dialect (through fakesnow), as ci/prod run it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import fakesnow
import pytest
import snowflake.connector

from platform_assets.integrations.salesforce.changes import detect_changes, resolve_model
from platform_assets.integrations.salesforce.sync_spec import SyncSpec
from platform_assets.integrations.salesforce.sync_state import Outcome, PendingRecord, SyncStore

SPEC = SyncSpec(
    name="leads",
    model="act_leads",
    object="Lead",
    mode="mirror",
    external_id_field="Signup_Id__c",
    primary_key="signup_id",
    mapping={"Signup_Id__c": "Signup_Id__c", "FirstName": "FirstName", "score": "Product_Usage_Score__c"},
)


class Session:
    """The warehouse session API (`?` placeholders) over a DB-API connection."""

    dialect = "snowflake"

    def __init__(self, connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params=None) -> None:
        self.connection.cursor().execute(sql, params or [])

    def executemany(self, sql: str, rows) -> None:
        self.connection.cursor().executemany(sql, rows)

    def fetchall(self, sql: str, params=None) -> list[tuple]:
        cursor = self.connection.cursor()
        cursor.execute(sql, params or [])
        return [tuple(row) for row in cursor.fetchall()]

    def fetchone(self, sql: str, params=None) -> tuple | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None


class FakeSnowflakeWarehouse:
    """The warehouse session API over a fakesnow connection (Snowflake SQL, upper-cased names)."""

    dialect = "snowflake"

    def __init__(self, connection) -> None:
        self.connection = connection

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[Session]:
        yield Session(self.connection)


@pytest.fixture
def snowflake_store() -> Iterator[SyncStore]:
    with fakesnow.patch():
        connection = snowflake.connector.connect(database="platform", schema="public", paramstyle="qmark")
        store = SyncStore(FakeSnowflakeWarehouse(connection), "platform_sync")
        with store.session() as session:
            store.ensure_tables(session)
            session.execute("CREATE SCHEMA IF NOT EXISTS activation")
            session.execute(
                "CREATE TABLE activation.act_leads (signup_id VARCHAR, Signup_Id__c VARCHAR, "
                "FirstName VARCHAR, score DOUBLE)"
            )
            session.execute(
                "INSERT INTO activation.act_leads VALUES ('a', 'a', 'Ada', 1.5), ('b', 'b', 'Bo', 2)"
            )
        yield store


def changes(store: SyncStore) -> dict[str, str]:
    with store.session() as session:
        model = resolve_model(session, SPEC, "activation")
        found = detect_changes(session, SPEC, model, store.table("sync_state"), full_resync=False)
    return {change.record_key: change.change_type for change in found.changes}


def test_state_advances_only_for_confirmed_records_on_snowflake(snowflake_store: SyncStore):
    store = snowflake_store
    with store.session() as session:
        model = resolve_model(session, SPEC, "activation")
        found = detect_changes(session, SPEC, model, store.table("sync_state"), full_resync=False).changes
    hashes = {c.record_key: c.row_hash for c in found}
    assert model.columns["FirstName"] == "FIRSTNAME"  # Snowflake upper-cases unquoted names
    store.write_pending(
        "leads",
        [PendingRecord("r1", 0, c.record_key, c.row_hash, c.change_type, None, c.record_key) for c in found],
    )
    store.record_job("leads", "r1", 0, "750000000000001AAA", "upsert")
    store.apply_outcomes(
        "leads",
        "r1",
        0,
        ["750000000000001AAA"],
        [
            Outcome("a", hashes["a"], "added", "00Q000000000001AAA", "succeeded"),
            Outcome("b", hashes["b"], "added", None, "failed", "FIELD_CUSTOM_VALIDATION_EXCEPTION: no"),
        ],
    )

    assert changes(store) == {"b": "added"}
    assert store.failure_summary("leads").count == 1
    assert store.open_jobs("leads") == {}
    with store.session() as session:
        session.execute("DELETE FROM activation.act_leads WHERE signup_id = 'a'")
    assert changes(store) == {"b": "added", "a": "removed"}
