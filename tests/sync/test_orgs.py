"""More than one Salesforce org: orgs.yaml, syncs and sources naming their org, state, pools and budgets.

Two sandbox orgs run side by side on free loopback ports; a small orgs file declares them with a shape the
sample does not have (names `east`/`west`, the non-default org first in the file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from conftest import Warehouse, fast_client, lead_spec

from local_stack.sandbox.salesforce import start_sandbox
from platform_assets import environment
from platform_assets.components.meltano import SourcesConfigError, load_sources
from platform_assets.components.salesforce_syncs import (
    ApiBudgetExhausted,
    SalesforceSyncsComponent,
    check_api_budget,
    sync_pool,
)
from platform_assets.integrations.meltano.project import MeltanoProjectError, load_project
from platform_assets.integrations.salesforce.orgs import (
    OrgConfigError,
    OrgCredentialsError,
    load_orgs,
)
from platform_assets.integrations.salesforce.sync_spec import SyncConfigError, load_sync_specs
from platform_assets.warehouse import DuckDBWarehouse

MANIFEST_FREE_MODEL = "activation.act_test_leads"  # `schema.name`: no dbt manifest needed


def orgs_document(east_budget: int | None = None) -> dict[str, Any]:
    def org(prefix: str, **extra: Any) -> dict[str, Any]:
        return {
            "credentials": {
                "login_url": f"{prefix}_LOGIN_URL",
                "client_id": f"{prefix}_CLIENT_ID",
                "client_secret": f"{prefix}_CLIENT_SECRET",
                "username": f"{prefix}_USERNAME",
                "private_key": f"{prefix}_PRIVATE_KEY",
            },
            **extra,
        }

    east = org("EAST_SF", sandbox_port=0, auth={"prod": "jwt_bearer", "default": "client_credentials"})
    if east_budget is not None:
        east["daily_api_budget"] = east_budget
    return {"default": "west", "orgs": {"east": east, "west": org("WEST_SF", sandbox_port=18999)}}


def write_orgs(folder: Path, document: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "orgs.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


SYNC = """\
name: {name}
{org_line}model: activation.act_test_leads
object: Lead
mode: upsert
external_id_field: Signup_Id__c
primary_key: signup_id
batch_size: 40
mapping:
  Signup_Id__c: Signup_Id__c
  LastName: LastName
  Company: Company
"""


def write_sync(folder: Path, name: str, org: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(SYNC.format(name=name, org_line=f"org: {org}\n" if org else ""))
    return path


@pytest.fixture
def two_orgs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_platform) -> Iterator[dict[str, Any]]:
    """Two empty sandbox orgs, each its own SQLite file, reachable through the orgs' login_url variables."""
    with (
        start_sandbox(db_path=tmp_path / "east.sqlite", daily_api_limit=70_000) as east,  # recognisable usage
        start_sandbox(db_path=tmp_path / "west.sqlite") as west,
    ):
        monkeypatch.setenv("EAST_SF_LOGIN_URL", east.url)
        monkeypatch.setenv("WEST_SF_LOGIN_URL", west.url)
        yield {"east": east, "west": west, "orgs_file": write_orgs(tmp_path / "defs", orgs_document(10_000))}


# ------------------------------------------------------------------------------ declaration mistakes


def test_orgs_file_mistakes_name_the_file_and_key(tmp_path: Path) -> None:
    document = orgs_document()
    document["default"] = "north"
    document["orgs"]["east"]["credentials"]["client_secret"] = "s3cr3t-value"  # a value, not a NAME
    document["orgs"]["west"]["budget"] = 5
    with pytest.raises(OrgConfigError) as error:
        load_orgs(write_orgs(tmp_path, document))
    assert f"{tmp_path / 'orgs.yaml'}: key 'orgs.west.budget': is not an org setting" in str(error.value)

    del document["orgs"]["west"]["budget"]
    with pytest.raises(OrgConfigError) as error:
        load_orgs(write_orgs(tmp_path, document))
    message = str(error.value)
    assert (
        "key 'orgs.east.credentials.client_secret': 's3cr3t-value' is not an environment variable NAME"
        in message
    )
    assert "key 'default': org 'north' is not declared under orgs (east, west)" in message


def test_a_sync_naming_an_unknown_org_fails_at_load_naming_file_and_key(tmp_path: Path) -> None:
    orgs = load_orgs(write_orgs(tmp_path / "defs", orgs_document()))
    path = write_sync(tmp_path / "syncs", "to_north", "north")
    with pytest.raises(SyncConfigError) as error:
        load_sync_specs(tmp_path / "syncs", None, orgs)
    assert f"{path}: key 'org': org 'north' is not declared in {tmp_path / 'defs' / 'orgs.yaml'}" in str(
        error.value
    )
    assert "(orgs there: east, west)" in str(error.value)


def test_a_source_naming_an_unknown_org_fails_at_load_naming_file_and_key(tmp_path: Path, local_platform):
    orgs = load_orgs(write_orgs(tmp_path / "defs", orgs_document()))
    sources = tmp_path / "sources.yaml"
    declared = {"extractor": "tap-salesforce-bulk", "description": "x", "org": "north"}
    declared["streams"] = {"account": {"description": "Accounts."}}
    sources.write_text(yaml.safe_dump({"sources": {"sf_north": declared}}))
    loaders = {"local": "target-duckdb", "ci": "target-snowflake", "prod": "target-snowflake"}
    with pytest.raises(SourcesConfigError) as error:
        load_sources(sources, environment.MELTANO_PROJECT_DIR, loaders, local_platform, orgs)
    assert f"{sources}: key 'sources.sf_north.org': org 'north' is not declared" in str(error.value)


def test_syncs_name_their_org_and_default_to_the_default_org(tmp_path: Path) -> None:
    orgs = load_orgs(write_orgs(tmp_path / "defs", orgs_document()))
    write_sync(tmp_path / "syncs", "plain", None)
    write_sync(tmp_path / "syncs", "eastern", "east")
    specs = {spec.name: spec for spec in load_sync_specs(tmp_path / "syncs", None, orgs)}
    assert (specs["plain"].org, specs["plain"].state_key) == ("west", "plain")
    assert (specs["eastern"].org, specs["eastern"].state_key) == ("east", "east/eastern")
    assert [org.name for org in orgs] == ["west", "east"], "the default org first"
    assert (orgs.get("west").resource_key, orgs.get("east").resource_key) == ("salesforce", "salesforce_east")


def test_without_an_orgs_file_there_is_one_org_read_from_the_salesforce_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESFORCE_SANDBOX_PORT", "18123")
    monkeypatch.delenv("SALESFORCE_LOGIN_URL", raising=False)
    orgs = load_orgs(tmp_path / "absent.yaml")
    (org,) = list(orgs)
    assert (org.name, org.is_default, org.pool, org.state_key("leads")) == (
        "default",
        True,
        "salesforce_api",
        "leads",
    )
    assert org.local_login_url() == "http://127.0.0.1:18123"


# ------------------------------------------------------------------------------ credentials, pools


def test_a_missing_credential_variable_in_prod_fails_at_run_start_naming_file_key_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_orgs(tmp_path, orgs_document())
    for name in ("LOGIN_URL", "CLIENT_ID", "USERNAME"):
        monkeypatch.setenv(f"EAST_SF_{name}", "set")
    monkeypatch.delenv("EAST_SF_PRIVATE_KEY", raising=False)
    monkeypatch.setenv("EAST_SF_CLIENT_SECRET", "not-used-by-jwt")
    monkeypatch.setenv("PLATFORM_ENV", "prod")
    environment.current.cache_clear()
    east = load_orgs(path).get("east")
    resource = east.resource()  # load does not need the values
    assert resource.private_key is None
    with pytest.raises(OrgCredentialsError) as error:
        east.connection()
    message = str(error.value)
    assert f"Salesforce org 'east' ({path})" in message
    assert (
        "orgs.east.credentials.private_key: the environment variable EAST_SF_PRIVATE_KEY is not set"
        in message
    )
    assert "not-used-by-jwt" not in message and "CLIENT_SECRET" not in message, "JWT bearer in prod"

    monkeypatch.setenv("EAST_SF_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----")
    assert set(east.connection()) == {"login_url", "client_id", "username", "private_key", "api_version"}
    assert sync_pool(environment.current(), east) == "salesforce_api_east", "each org its own pool"
    environment.current.cache_clear()


# ------------------------------------------------------------------------------ state per org


def test_a_record_synced_to_one_org_is_not_synced_in_another(
    two_orgs: dict[str, Any], warehouse: Warehouse
) -> None:
    from platform_assets.integrations.salesforce.sync_engine import SalesforceSyncRun

    warehouse.make_leads(30)
    orgs = load_orgs(two_orgs["orgs_file"])

    def run(org_name: str) -> Any:
        org = orgs.get(org_name)
        spec = lead_spec(org=org.name, org_state_key=org.state_key("test_leads"))
        return SalesforceSyncRun(
            spec=spec,
            warehouse=warehouse.resource,
            client=fast_client(two_orgs[org_name]),
            sync_schema="platform_sync",
            model_schema="activation",
            run_id=f"run-{org_name}",
        ).run()

    assert run("west").succeeded["added"] == 30
    assert run("east").succeeded["added"] == 30, "the same rows are new to the other org"
    assert run("west").planned["added"] + run("west").planned["changed"] == 0
    assert (two_orgs["west"].count("Lead"), two_orgs["east"].count("Lead")) == (30, 30)
    keys = warehouse.sql("SELECT sync_name, count(*) FROM platform_sync.sync_state GROUP BY 1 ORDER BY 1")
    assert keys == [("east/test_leads", 30), ("test_leads", 30)]


# ------------------------------------------------------------------------------ budget


def test_the_daily_api_budget_stops_a_sync_before_it_sends(two_orgs: dict[str, Any]) -> None:
    document = orgs_document(east_budget=1)
    east = load_orgs(write_orgs(two_orgs["orgs_file"].parent / "tight", document)).get("east")
    client = fast_client(two_orgs["east"])
    client.limits()  # the org has used API requests today
    with pytest.raises(ApiBudgetExhausted) as error:
        check_api_budget(east, client)
    assert "key 'orgs.east.daily_api_budget'" in str(error.value) and "its budget is 1" in str(error.value)
    roomy = load_orgs(two_orgs["orgs_file"]).get("east")
    usage = check_api_budget(roomy, client)
    assert usage["org_daily_api_budget"] == 10_000 and usage["org_api_requests_used_at_start"] >= 1


# ------------------------------------------------------------------------------ both orgs as assets


def test_two_orgs_each_get_their_own_sync_resource_state_and_api_usage(
    two_orgs: dict[str, Any], tmp_path: Path, warehouse: Warehouse, local_platform
) -> None:
    warehouse.make_leads(25)
    syncs = tmp_path / "syncs"
    write_sync(syncs, "leads_west", None)
    write_sync(syncs, "leads_east", "east")
    component = SalesforceSyncsComponent(
        syncs_dir=str(syncs),
        orgs_file=str(two_orgs["orgs_file"]),
        dbt_manifest_path=str(tmp_path / "not-prepared.json"),  # models are `schema.name`
    )
    defs = dg.build_defs_for_component(component)
    assert set(defs.resources) == {"salesforce", "salesforce_east"}
    two_orgs["west"].counters()  # before: both orgs untouched
    result = dg.materialize(
        list(defs.assets),
        resources={**defs.resources, "warehouse": DuckDBWarehouse(path=str(local_platform.duckdb_path))},
        run_config={},
    )
    assert result.success
    metadata = {
        event.asset_key.path[-1]: event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["leads_west"]["salesforce_org"].value == "west"
    assert metadata["leads_east"]["salesforce_org"].value == "east"
    assert metadata["leads_east"]["org_daily_api_budget"].value == 10_000
    assert "org_daily_api_budget" not in metadata["leads_west"], "west declares no budget"
    assert (two_orgs["west"].count("Lead"), two_orgs["east"].count("Lead")) == (25, 25)
    # Each org's usage comes from its own sandbox's Sforce-Limit-Info (east's sandbox has another limit).
    assert metadata["leads_east"]["daily_api_requests_max"].value == 70_000
    assert metadata["leads_west"]["daily_api_requests_max"].value != 70_000
    for name in ("west", "east"):
        meta = metadata[f"leads_{name}"]
        used = meta["daily_api_requests_max"].value - meta["daily_api_requests_remaining"].value
        assert used > 0 and meta["api_calls"].value > 0, (name, used)
    for name in ("west", "east"):
        assert sum(two_orgs[name].counters().values()) > 0, f"{name} sandbox was called"
    assert warehouse.state("leads_west") and warehouse.state("east/leads_east")
    assert not warehouse.state("leads_east"), "the east org's state is keyed by its org"


# ------------------------------------------------------------------------------ Meltano: one plugin per org


def test_an_inheriting_extractor_has_its_own_name_and_its_parents_venv_and_settings(tmp_path: Path) -> None:
    project = {
        "plugins": {
            "extractors": [
                {
                    "name": "tap-crm",
                    "namespace": "tap_crm",
                    "pip_url": "tap-crm==1.0",
                    "executable": "tap-crm",
                    "settings": [{"name": "login_url"}],
                    "select": ["account.*", "case.*"],
                },
                {"name": "tap-crm--emea", "inherit_from": "tap-crm", "select": ["case.*"]},
                {"name": "tap-crm--apac", "inherit_from": "tap-crm", "settings": [{"name": "region"}]},
            ],
            "loaders": [],
        }
    }
    (tmp_path / "meltano.yml").write_text(yaml.safe_dump(project))
    extractors = load_project(tmp_path).extractors
    assert extractors["tap-crm--emea"].streams == ("case",)
    assert extractors["tap-crm--emea"].venv_name == "tap-crm"
    assert extractors["tap-crm--apac"].streams == ("account", "case")
    assert extractors["tap-crm--apac"].settings == ("login_url", "region")

    project["plugins"]["extractors"][1]["inherit_from"] = "tap-nothing"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meltano.yml").write_text(yaml.safe_dump(project))
    with pytest.raises(MeltanoProjectError) as error:
        load_project(broken)
    assert "plugins.extractors[1] (tap-crm--emea) inherits from 'tap-nothing'" in str(error.value)


def test_the_sample_support_source_reads_its_own_org_under_its_own_meltano_state_id(local_platform) -> None:
    from platform_assets.integrations.meltano.runner import state_id

    loaders = {"local": "target-duckdb", "ci": "target-snowflake", "prod": "target-snowflake"}
    sources_file = environment.PROJECT_ROOT / "platform_assets" / "defs" / "ingestion" / "sources.yaml"
    sources = {
        s.name: s
        for s in load_sources(sources_file, environment.MELTANO_PROJECT_DIR, loaders, local_platform)
    }
    sales, support = sources["salesforce"], sources["salesforce_support"]
    assert (sales.org.name, support.org.name) == ("sales", "support")
    ids = {state_id(local_platform, s.extractor, s.loader) for s in (sales, support)}
    assert len(ids) == 2, ids
    assert load_project(environment.MELTANO_PROJECT_DIR).extractors[support.extractor].venv_name == (
        "tap-salesforce-bulk"
    )
