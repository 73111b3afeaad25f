"""The ci/prod warehouse path: SnowflakeWarehouse sessions on fakesnow, and prod-mode definitions loading."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import fakesnow
import pytest
import snowflake.connector
from production_support import BIN, PLACEHOLDER_SETTINGS, REPO_ROOT, base_env

from platform_assets import environment
from platform_assets.resources import warehouse_resource
from platform_assets.warehouse import SnowflakeWarehouse

EVERY_REQUIRED_VARIABLE = [var for variables in environment.REQUIRED_SETTINGS.values() for var in variables]


@pytest.fixture
def prod_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[environment.PlatformEnvironment]:
    monkeypatch.setenv("PLATFORM_ENV", "prod")
    monkeypatch.setenv("PLATFORM_LOCAL_DIR", str(tmp_path / "local"))
    for key, value in PLACEHOLDER_SETTINGS.items():
        monkeypatch.setenv(key, value)
    environment.current.cache_clear()
    yield environment.current()
    environment.current.cache_clear()


@pytest.fixture
def fake_snowflake(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """fakesnow in place of Snowflake; yields the keyword arguments of every connection opened."""
    opened: list[dict] = []
    with fakesnow.patch():
        fake_connect = snowflake.connector.connect

        def connect(**kwargs):
            opened.append(dict(kwargs))
            # Snowflake makes PUBLIC the current schema of a session opened on a database without one;
            # fakesnow does not, so give it the same default.
            return fake_connect(**{"schema": "PUBLIC", **kwargs})

        # Undone before fakesnow restores the real connector (a function-scoped undo would run after).
        with monkeypatch.context() as patched:
            patched.setattr(snowflake.connector, "connect", connect)
            yield opened


def test_every_required_setting_has_a_placeholder_in_these_tests() -> None:
    assert set(EVERY_REQUIRED_VARIABLE) <= set(PLACEHOLDER_SETTINGS)


def test_prod_warehouse_resource_is_snowflake_with_qmark_params_and_env_backed_secrets(
    prod_environment: environment.PlatformEnvironment,
) -> None:
    resource = warehouse_resource(prod_environment)
    assert isinstance(resource, SnowflakeWarehouse)
    assert resource.dialect == "snowflake"
    # Unresolved EnvVars: the resource carries variable names, never the values.
    assert resource.password == "SNOWFLAKE_PASSWORD"
    assert isinstance(resource.password, dg.EnvVar)


def test_snowflake_session_runs_qmark_statements_and_batches_through_a_dagster_run(
    prod_environment: environment.PlatformEnvironment, fake_snowflake: list[dict]
) -> None:
    """A run with the prod `warehouse` resource (EnvVars resolved by Dagster) on fakesnow's Snowflake."""
    seen: dict[str, object] = {}

    @dg.asset
    def sync_state_probe(warehouse: SnowflakeWarehouse) -> None:
        with warehouse.session() as session:
            seen["dialect"] = session.dialect
            session.execute("create schema if not exists sync_state")
            session.execute("create or replace table sync_state.records (record_key varchar, hash varchar)")
            session.executemany(
                "insert into sync_state.records values (?, ?)", [("ws_000001", "h1"), ("ws_000002", "h2")]
            )
            session.executemany("insert into sync_state.records values (?, ?)", [])  # a no-op, not an error
            session.execute(
                "update sync_state.records set hash = ? where record_key = ?", ["h1b", "ws_000001"]
            )
            seen["rows"] = session.fetchall(
                "select record_key, hash from sync_state.records where record_key like ? order by 1", ["ws_%"]
            )
            seen["count"] = session.fetchone(
                "select count(*) from sync_state.records where hash <> ?", ["h2"]
            )
        with warehouse.session(read_only=True) as later:
            seen["persisted"] = later.fetchone("select count(*) from sync_state.records")

    resources = {"warehouse": warehouse_resource(prod_environment)}
    assert dg.materialize([sync_state_probe], resources=resources).success
    # Two sessions, two connections, each with qmark binding and settings resolved from the environment.
    assert [kwargs["paramstyle"] for kwargs in fake_snowflake] == ["qmark", "qmark"]
    assert fake_snowflake[0]["password"] == PLACEHOLDER_SETTINGS["SNOWFLAKE_PASSWORD"]
    assert fake_snowflake[0]["database"] == PLACEHOLDER_SETTINGS["SNOWFLAKE_DATABASE"]
    assert seen == {
        "dialect": "snowflake",
        "rows": [("ws_000001", "h1b"), ("ws_000002", "h2")],
        "count": (1,),
        "persisted": (2,),
    }


def test_missing_settings_are_listed_together_and_only_the_missing_ones(
    prod_environment: environment.PlatformEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SNOWFLAKE_ROLE")
    monkeypatch.setenv("HIGHTOUCH_API_KEY", "")  # empty counts as missing
    with pytest.raises(environment.MissingSettingsError) as raised:
        prod_environment.validate()
    message = str(raised.value)
    assert "SNOWFLAKE_ROLE" in message and "HIGHTOUCH_API_KEY" in message
    assert "SNOWFLAKE_USER" not in message


def validate_definitions(
    tmp_path: Path, project: Path, settings: dict[str, str]
) -> subprocess.CompletedProcess:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    env = base_env(
        PLATFORM_ENV="prod", PLATFORM_LOCAL_DIR=str(tmp_path / "local"), DAGSTER_HOME=str(home), **settings
    )
    return subprocess.run(
        [BIN / "dagster", "definitions", "validate", "-m", "platform_assets.definitions"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def prod_validations(
    tmp_path_factory: pytest.TempPathFactory, prod_build: Path
) -> dict[str, subprocess.CompletedProcess]:
    """`dagster definitions validate` in prod mode with and without settings, run side by side.

    With settings it loads the prod build (manifest prepared for Snowflake); without, the repository
    itself, which must fail on the settings before it gets to anything else.
    """
    cases = {"placeholders": (prod_build, PLACEHOLDER_SETTINGS), "nothing": (REPO_ROOT, {})}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(validate_definitions, tmp_path_factory.mktemp(name), project, settings)
            for name, (project, settings) in cases.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.integration
def test_prod_definitions_validate_with_placeholder_credentials(
    prod_validations: dict[str, subprocess.CompletedProcess],
) -> None:
    validated = prod_validations["placeholders"]
    assert validated.returncode == 0, (validated.stdout + validated.stderr)[-5000:]
    for secret in ("SNOWFLAKE_PASSWORD", "SALESFORCE_CLIENT_SECRET", "HIGHTOUCH_API_KEY"):
        assert PLACEHOLDER_SETTINGS[secret] not in validated.stdout + validated.stderr


@pytest.mark.integration
def test_prod_definitions_without_settings_fail_naming_every_missing_variable(
    prod_validations: dict[str, subprocess.CompletedProcess],
) -> None:
    failed = prod_validations["nothing"]
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "MissingSettingsError" in output
    missing = [var for var in EVERY_REQUIRED_VARIABLE if var not in output]
    assert not missing, f"the error does not name {missing}:\n{output[-3000:]}"


def test_sync_state_change_detection_and_counts_through_the_prod_snowflake_resource(
    prod_environment: environment.PlatformEnvironment, fake_snowflake: list[dict]
) -> None:
    """Sync state on Snowflake through the real resource: every SyncStore call opens its own connection
    (dagster-snowflake commits and closes it), so state must persist between them."""
    from platform_assets.integrations.salesforce.changes import detect_changes, resolve_model
    from platform_assets.integrations.salesforce.sync_spec import SyncSpec
    from platform_assets.integrations.salesforce.sync_state import Outcome, PendingRecord, SyncStore

    spec = SyncSpec(
        name="leads", model="act_salesforce_leads", object="Lead", mode="mirror",
        external_id_field="Signup_Id__c", primary_key="signup_id",
        mapping={"Signup_Id__c": "Signup_Id__c", "LastName": "LastName"},
    )  # fmt: skip
    seen: dict[str, object] = {}

    def changes(store: SyncStore) -> dict[str, str]:
        with store.session() as session:
            model = resolve_model(session, spec, "activation")
            found = detect_changes(session, spec, model, store.table("sync_state"), full_resync=False)
        return {change.record_key: change.change_type for change in found.changes}

    @dg.asset
    def leads_sync_state(warehouse: SnowflakeWarehouse) -> None:
        store = SyncStore(warehouse, prod_environment.schema("platform_sync"))
        with store.session() as session:
            store.ensure_tables(session)
            session.execute("create schema if not exists activation")
            session.execute(
                "create table activation.act_salesforce_leads "
                "(signup_id varchar, Signup_Id__c varchar, LastName varchar)"
            )
            session.executemany(
                "insert into activation.act_salesforce_leads values (?, ?, ?)",
                [("sgn_1", "sgn_1", "Lovelace"), ("sgn_2", "sgn_2", "Hopper")],
            )
            model = resolve_model(session, spec, "activation")
            first = detect_changes(session, spec, model, store.table("sync_state"), full_resync=False).changes
        seen["first"] = sorted((c.record_key, c.change_type) for c in first)
        store.write_pending(
            "leads", [PendingRecord("r1", 0, c.record_key, c.row_hash, c.change_type, None, c.record_key)
                      for c in first],
        )  # fmt: skip
        store.record_job("leads", "r1", 0, "750000000000001AAA", "upsert")
        seen["open_before"] = len(store.open_jobs("leads"))
        hashes = {c.record_key: c.row_hash for c in first}
        store.apply_outcomes("leads", "r1", 0, ["750000000000001AAA"], [
            Outcome("sgn_1", hashes["sgn_1"], "added", "00Q000000000001AAA", "succeeded"),
            Outcome("sgn_2", hashes["sgn_2"], "added", None, "failed", "REQUIRED_FIELD_MISSING: Company"),
        ])  # fmt: skip
        seen["after_run"] = changes(store)
        seen["state_count"] = store.state_count("leads")
        seen["failures"] = store.failure_summary("leads").by_change_type
        seen["open_after"] = store.open_jobs("leads")
        with store.session() as session:
            session.execute("update activation.act_salesforce_leads set LastName = ? where signup_id = ?",
                            ["Lovelace-King", "sgn_1"])  # fmt: skip
        seen["after_edit"] = changes(store)

    resources = {"warehouse": warehouse_resource(prod_environment)}
    assert dg.materialize([leads_sync_state], resources=resources).success
    assert len(fake_snowflake) > 5, "every SyncStore call opens its own connection"
    assert seen == {
        "first": [("sgn_1", "added"), ("sgn_2", "added")],
        "open_before": 1,
        "after_run": {"sgn_2": "added"},  # confirmed record left the diff; the failed one is retried
        "state_count": 1,
        "failures": {"added": 1},
        "open_after": {},
        "after_edit": {"sgn_1": "changed", "sgn_2": "added"},
    }
