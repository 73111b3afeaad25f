"""A small sample company in a temp DuckDB and a copy of the dbt project with its manifest prepared.

The raw tables are written here, with the contract's columns (landing streams keep _source_file,
_source_line and _sdc_batched_at; Salesforce tables use the field names in lower case), so these tests
do not depend on the ingestion code. Expected results are written next to the rows that produce them.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from platform_assets import environment
from platform_assets.components.dbt_domains import DbtDomainsComponent, prepare_manifest

REPO_DBT_PROJECT = environment.DBT_PROJECT_DIR
TRANSFORMATION_DEFS = environment.PROJECT_ROOT / "platform_assets" / "defs" / "transformation" / "defs.yaml"
BATCH_1 = "2026-03-01 00:00:00"
BATCH_2 = "2026-03-15 13:00:00"


def _landing(file: str, batch: str, rows: list[dict]) -> list[dict]:
    return [
        {**row, "_source_file": file, "_source_line": line, "_sdc_batched_at": batch}
        for line, row in enumerate(rows, start=1)
    ]


LANDING: dict[str, list[dict]] = {
    "workspaces": _landing(
        "workspaces/2026-03-01.csv",
        BATCH_1,
        [
            {
                "workspace_id": "ws_000001",
                "name": "Acme",
                "domain": "acme.io",
                "industry": "Software",
                "employee_count": "250",
                "country": "US",
                "plan": "team",
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            },
            {
                "workspace_id": "ws_000002",
                "name": "Beta",
                "domain": "beta.io",
                "industry": "Retail",
                "employee_count": "20",
                "country": "DE",
                "plan": "trial",
                "created_at": "2026-03-01T00:00:00Z",
                "updated_at": "2026-03-01T00:00:00Z",
            },
            {
                "workspace_id": "ws_000003",
                "name": "Gamma",
                "domain": "gamma.io",
                "industry": "Finance",
                "employee_count": "1200",
                "country": "US",
                "plan": "business",
                "created_at": "2025-12-01T00:00:00Z",
                "updated_at": "2025-12-01T00:00:00Z",
            },
            {
                "workspace_id": "ws_000004",
                "name": "Delta",
                "domain": "delta.io",
                "industry": "Media",
                "employee_count": "60",
                "country": "FR",
                "plan": "team",
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            },
            {
                "workspace_id": "ws_000005",
                "name": "Epsilon",
                "domain": "epsilon.io",
                "industry": "Software",
                "employee_count": "5",
                "country": "US",
                "plan": "free",
                "created_at": "2026-02-01T00:00:00Z",
                "updated_at": "2026-02-01T00:00:00Z",
            },
        ],
    ),
    "users": _landing(
        "users/2026-03-01.csv",
        BATCH_1,
        [
            {
                "user_id": f"usr_00000{n}",
                "workspace_id": ws,
                "email": email,
                "first_name": first,
                "last_name": last,
                "title": "Engineer",
                "role": "member",
                "created_at": created,
            }
            for n, ws, email, first, last, created in [
                (1, "ws_000001", "ann@acme.io", "Ann", "Archer", "2026-01-02T00:00:00Z"),
                (2, "ws_000001", "bob@acme.io", "Bob", "Baker", "2026-01-03T00:00:00Z"),
                (3, "ws_000001", "cy@acme.io", "Cy", "Cole", "2026-01-04T00:00:00Z"),
                (4, "ws_000002", "Trial@Beta.io", "Tia", "Trent", "2026-03-01T00:00:00Z"),
                (5, "ws_000003", "gus@gamma.io", "Gus", "Grant", "2025-12-02T00:00:00Z"),
                (6, "ws_000002", "old-sam@beta.io", "Sam", "Stone", "2026-03-02T00:00:00Z"),
                (7, "ws_000005", "dana@epsilon.io", "Dana", "Dunn", "2026-02-02T00:00:00Z"),
                (8, "ws_000005", "eli@epsilon.io", "Eli", "Eaton", "2026-02-03T00:00:00Z"),
            ]
        ],
    )
    + _landing(
        "users/2026-03-10.csv",
        BATCH_2,
        [
            # A later drop corrects usr_000006's email: the latest file wins.
            {
                "user_id": "usr_000006",
                "workspace_id": "ws_000002",
                "email": "sam@beta.io",
                "first_name": "Sam",
                "last_name": "Stone",
                "title": "CTO",
                "role": "admin",
                "created_at": "2026-03-02T00:00:00Z",
            },
        ],
    ),
    "signups": _landing(
        "signups/2026-03-01.jsonl",
        BATCH_1,
        [
            {
                "signup_id": sid,
                "user_id": uid,
                "workspace_id": ws,
                "email": email,
                "first_name": first,
                "last_name": last,
                "company": company,
                "title": "Engineer",
                "utm_source": "newsletter",
                "campaign_id": campaign,
                "signed_up_at": at,
            }
            for sid, uid, ws, email, first, last, company, campaign, at in [
                (
                    "sgn_000001",
                    "usr_000001",
                    "ws_000001",
                    "ann@acme.io",
                    "Ann",
                    "Archer",
                    "Acme",
                    "cmp_000001",
                    "2026-01-02T00:00:00Z",
                ),
                (
                    "sgn_000004",
                    "usr_000004",
                    "ws_000002",
                    "trial@beta.io",
                    "Tia",
                    "Trent",
                    "Beta",
                    "cmp_000001",
                    "2026-03-01T00:00:00Z",
                ),
                (
                    "sgn_000005",
                    "usr_000005",
                    "ws_000003",
                    "gus@gamma.io",
                    "Gus",
                    "Grant",
                    "Gamma",
                    "cmp_000002",
                    "2025-12-02T00:00:00Z",
                ),
                (
                    "sgn_000006",
                    "usr_000006",
                    "ws_000002",
                    "sam@beta.io",
                    "Sam",
                    None,
                    None,
                    None,
                    "2026-03-02T00:00:00Z",
                ),
                (
                    "sgn_000007",
                    "usr_000007",
                    "ws_000005",
                    "dana@epsilon.io",
                    "Dana",
                    "Dunn",
                    "Epsilon",
                    None,
                    "2026-02-02T00:00:00Z",
                ),
                (
                    "sgn_000008",
                    "usr_000008",
                    "ws_000005",
                    "eli@epsilon.io",
                    "Eli",
                    "Eaton",
                    "Epsilon",
                    None,
                    "2026-02-03T00:00:00Z",
                ),
            ]
        ],
    ),
    "subscriptions": _landing(
        "subscriptions/2026-01-05.csv",
        BATCH_1,
        [
            # An earlier version of sub_000001 (superseded by the later updated_at below).
            {
                "subscription_id": "sub_000001",
                "workspace_id": "ws_000001",
                "plan": "team",
                "seats": "3",
                "monthly_amount": "80.00",
                "status": "active",
                "started_at": "2026-01-10T00:00:00Z",
                "canceled_at": "",
                "updated_at": "2026-01-05T00:00:00Z",
            },
        ],
    )
    + _landing(
        "subscriptions/2026-03-15.csv",
        BATCH_2,
        [
            {
                "subscription_id": "sub_000001",
                "workspace_id": "ws_000001",
                "plan": "team",
                "seats": "3",
                "monthly_amount": "100.00",
                "status": "active",
                "started_at": "2026-01-10T00:00:00Z",
                "canceled_at": "",
                "updated_at": "2026-01-10T00:00:00Z",
            },
            {
                "subscription_id": "sub_000002",
                "workspace_id": "ws_000002",
                "plan": "team",
                "seats": "5",
                "monthly_amount": "50.00",
                "status": "trialing",
                "started_at": "2026-03-01T00:00:00Z",
                "canceled_at": "",
                "updated_at": "2026-03-01T00:00:00Z",
            },
            {
                "subscription_id": "sub_000003",
                "workspace_id": "ws_000003",
                "plan": "business",
                "seats": "20",
                "monthly_amount": "500.00",
                "status": "active",
                "started_at": "2025-12-15T00:00:00Z",
                "canceled_at": "",
                "updated_at": "2026-03-15T00:00:00Z",
            },
            {
                "subscription_id": "sub_000004",
                "workspace_id": "ws_000004",
                "plan": "team",
                "seats": "5",
                "monthly_amount": "50.00",
                "status": "canceled",
                "started_at": "2026-01-01T00:00:00Z",
                "canceled_at": "2026-02-20T00:00:00Z",
                "updated_at": "2026-02-20T00:00:00Z",
            },
        ],
    ),
    "invoices": _landing(
        "invoices/2026-03-01.csv",
        BATCH_1,
        [
            {
                "invoice_id": "inv_000001",
                "subscription_id": "sub_000001",
                "workspace_id": "ws_000001",
                "amount": "100.00",
                "status": "paid",
                "issued_at": "2026-02-10T00:00:00Z",
                "due_at": "2026-02-20T00:00:00Z",
            },
            {
                "invoice_id": "inv_000002",
                "subscription_id": "sub_000003",
                "workspace_id": "ws_000003",
                "amount": "500.00",
                "status": "open",
                "issued_at": "2026-02-01T00:00:00Z",
                "due_at": "2026-02-15T00:00:00Z",
            },
            {
                "invoice_id": "inv_000003",
                "subscription_id": "sub_000004",
                "workspace_id": "ws_000004",
                "amount": "50.00",
                "status": "void",
                "issued_at": "2026-02-01T00:00:00Z",
                "due_at": "2026-02-15T00:00:00Z",
            },
        ],
    ),
    "payments": _landing(
        "payments/2026-03-01.csv",
        BATCH_1,
        [
            {
                "payment_id": "pay_000001",
                "invoice_id": "inv_000001",
                "amount": "100.00",
                "method": "card",
                "paid_at": "2026-02-12T00:00:00Z",
            },
        ],
    ),
    "usage_events": _landing(
        "usage_events/2026-03-15.jsonl",
        BATCH_2,
        [
            {
                "event_id": eid,
                "workspace_id": ws,
                "user_id": uid,
                "event_type": "query",
                "quantity": qty,
                "occurred_at": at,
            }
            for eid, ws, uid, qty, at in [
                # ws_000001: 3 active users on 3 seats -> expansion audience (seat limit).
                ("evt_000001", "ws_000001", "usr_000001", "5", "2026-03-10T09:00:00Z"),
                ("evt_000002", "ws_000001", "usr_000002", "5", "2026-03-10T10:00:00Z"),
                ("evt_000003", "ws_000001", "usr_000003", "5", "2026-03-10T11:00:00Z"),
                ("evt_000004", "ws_000002", "usr_000004", "3", "2026-03-12T00:00:00Z"),
                # ws_000003: 100 units 23 days ago, 10 in the last 14 days -> usage-drop task.
                ("evt_000005", "ws_000003", "usr_000005", "100", "2026-02-20T12:00:00Z"),
                ("evt_000006", "ws_000003", "usr_000005", "10", "2026-03-15T12:00:00Z"),
            ]
        ],
    ),
    "campaigns": _landing(
        "campaigns/2026-03-01.csv",
        BATCH_1,
        [
            {
                "campaign_id": "cmp_000001",
                "name": "Spring newsletter",
                "channel": "email",
                "started_on": "2026-01-01",
                "ended_on": "2026-03-31",
                "budget": "1000.00",
            },
            {
                "campaign_id": "cmp_000002",
                "name": "Search Q4",
                "channel": "paid_search",
                "started_on": "2025-11-01",
                "ended_on": "2025-12-31",
                "budget": "5000.00",
            },
            # Still running whenever the tests run: its audience goes to Salesforce and Hightouch.
            {
                "campaign_id": "cmp_000003",
                "name": "Always on",
                "channel": "email",
                "started_on": "2026-01-01",
                "ended_on": "2099-12-31",
                "budget": "300.00",
            },
        ],
    ),
    "ad_spend": _landing(
        "ad_spend/2026-03-01.csv",
        BATCH_1,
        [
            {
                "spend_id": "spd_000001",
                "campaign_id": "cmp_000001",
                "spend_date": "2026-02-01",
                "impressions": "1000",
                "clicks": "50",
                "spend": "100.00",
            },
            {
                "spend_id": "spd_000002",
                "campaign_id": "cmp_000001",
                "spend_date": "2026-02-02",
                "impressions": "500",
                "clicks": "20",
                "spend": "50.00",
            },
            {
                "spend_id": "spd_000003",
                "campaign_id": "cmp_000002",
                "spend_date": "2025-12-01",
                "impressions": "4000",
                "clicks": "90",
                "spend": "200.00",
            },
        ],
    ),
}


def _sf(
    object_id: str, modstamp: str = "2026-03-01T00:00:00.000+0000", deleted: str = "false", **fields
) -> dict:
    return {
        "id": object_id,
        "createddate": "2026-01-01T00:00:00.000+0000",
        "lastmodifieddate": modstamp,
        "systemmodstamp": modstamp,
        "isdeleted": deleted,
        **fields,
    }


SALESFORCE: dict[str, list[dict]] = {
    "user": [
        _sf(
            "005000000000001",
            username="alice@corp",
            firstname="Alice",
            lastname="Manager",
            email="alice@corp.example",
            title="Account Manager",
            isactive="true",
            department="Account Management",
            territory__c="AMER",
        ),
        # Joined later: second in AMER's rotation.
        _sf(
            "005000000000002",
            username="bob@corp",
            lastname="Second",
            email="bob@corp.example",
            isactive="true",
            department="Account Management",
            territory__c="AMER",
            createddate="2026-02-01T00:00:00.000+0000",
        ),
        # Not in the pool: inactive, or another team.
        _sf(
            "005000000000003",
            username="carl@corp",
            lastname="Gone",
            isactive="false",
            department="Account Management",
            territory__c="AMER",
        ),
        _sf(
            "005000000000004",
            username="dee@corp",
            lastname="Sdr",
            isactive="true",
            department="Sales Development",
            territory__c="AMER",
        ),
    ],
    "account": [
        # An older version of Gamma's Account (superseded by the later SystemModstamp).
        _sf(
            "001000000000003",
            "2026-01-01T00:00:00.000+0000",
            name="Gamma (old)",
            ownerid="005000000000001",
            workspace_id__c="ws_000003",
            arr__c="0",
            plan__c="team",
        ),
        _sf(
            "001000000000003",
            name="Gamma",
            ownerid="005000000000001",
            workspace_id__c="ws_000003",
            arr__c="6000.0",
            plan__c="business",
        ),
        _sf(
            "001000000000001",
            name="Acme",
            ownerid="005000000000001",
            workspace_id__c="ws_000001",
            arr__c="0",
            plan__c="team",
        ),
        # Deleted: Delta's Account does not exist any more.
        _sf(
            "001000000000004",
            deleted="true",
            name="Delta",
            ownerid="005000000000001",
            workspace_id__c="ws_000004",
            arr__c="600",
            plan__c="team",
        ),
    ],
    "lead": [
        # Platform Lead whose usage changed (Beta now has 1 active user and activity).
        _sf(
            "00Q000000000004",
            firstname="Tia",
            lastname="Trent-Rep-Edited",
            company="Beta",
            email="trial@beta.io",
            status="Open - Not Contacted",
            signup_id__c="sgn_000004",
            workspace_id__c="ws_000002",
            product_usage_score__c="0",
            active_users__c="0",
            last_active_at__c="",
            isconverted="false",
        ),
        # Platform Lead already up to date (no activity in Epsilon).
        _sf(
            "00Q000000000008",
            firstname="Eli",
            lastname="Eaton",
            company="Epsilon",
            email="eli@epsilon.io",
            status="Open - Not Contacted",
            signup_id__c="sgn_000008",
            workspace_id__c="ws_000005",
            product_usage_score__c="0",
            active_users__c="0",
            last_active_at__c="",
            isconverted="false",
        ),
    ],
    "contact": [
        _sf(
            "003000000000007",
            accountid="",
            firstname="Dana",
            lastname="Dunn",
            email="dana@epsilon.io",
            ownerid="005000000000001",
            user_id__c="",
        ),
    ],
    "opportunity": [
        _sf(
            "006000000000003",
            name="Gamma - Expansion",
            accountid="001000000000003",
            stagename="Prospecting",
            closedate="2026-06-30",
            amount="2000",
            type="Existing Customer - Upgrade",
            ownerid="005000000000001",
            workspace_id__c="",
        ),
    ],
    "task": [
        _sf(
            "00T000000000002",
            subject="Invoice inv_000002 is past due",
            whatid="001000000000003",
            ownerid="005000000000001",
            activitydate="2026-03-17",
            status="Completed",
            priority="High",
            platform_key__c="invoice_past_due:inv_000002",
        ),
    ],
}

# Every field of the contract's Salesforce objects becomes a column, as the tap extracts them.
SALESFORCE_FIELDS = {
    "user": ["username", "firstname", "lastname", "email", "title", "isactive", "department", "territory__c"],
    "account": [
        "name",
        "website",
        "industry",
        "numberofemployees",
        "billingcountry",
        "ownerid",
        "workspace_id__c",
        "arr__c",
        "plan__c",
    ],
    "lead": [
        "firstname",
        "lastname",
        "company",
        "email",
        "title",
        "status",
        "leadsource",
        "ownerid",
        "signup_id__c",
        "workspace_id__c",
        "product_usage_score__c",
        "active_users__c",
        "last_active_at__c",
        "isconverted",
    ],
    "contact": ["accountid", "firstname", "lastname", "email", "title", "ownerid", "user_id__c"],
    "opportunity": [
        "name",
        "accountid",
        "stagename",
        "closedate",
        "amount",
        "type",
        "ownerid",
        "workspace_id__c",
    ],
    "task": [
        "subject",
        "whatid",
        "whoid",
        "ownerid",
        "activitydate",
        "status",
        "priority",
        "description",
        "platform_key__c",
    ],
}
SALESFORCE_SYSTEM_FIELDS = ["id", "createddate", "lastmodifieddate", "systemmodstamp", "isdeleted"]


def write_raw_tables(path: Path) -> None:
    """Create the raw schemas as the loaders would: text columns, plus lineage columns on landing."""
    sources = {"raw_landing": LANDING, "raw_salesforce": SALESFORCE}
    with duckdb.connect(str(path)) as connection:
        for schema, tables in sources.items():
            connection.execute(f"create schema if not exists {schema}")
            for table, rows in tables.items():
                declared = (
                    SALESFORCE_SYSTEM_FIELDS + SALESFORCE_FIELDS[table] if schema == "raw_salesforce" else []
                )
                columns = list(dict.fromkeys([*declared, *(column for row in rows for column in row)]))
                ddl = ", ".join(
                    f'"{c}" ' + {"_source_line": "bigint", "_sdc_batched_at": "timestamp"}.get(c, "varchar")
                    for c in columns
                )
                connection.execute(f'create or replace table {schema}."{table}" ({ddl})')
                placeholders = ", ".join("?" for _ in columns)
                connection.executemany(
                    f'insert into {schema}."{table}" values ({placeholders})',
                    [[row.get(c) for c in columns] for row in rows],
                )


@pytest.fixture(scope="session")
def dbt_project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's dbt project, copied so runs and edits stay in a temp dir, manifest prepared."""
    project_dir = tmp_path_factory.mktemp("dbt") / "dbt_project"
    shutil.copytree(
        REPO_DBT_PROJECT, project_dir, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLATFORM_LOCAL_DIR", str(project_dir.parent / "local"))
        patch.delenv("PLATFORM_ENV", raising=False)
        patch.delenv("PLATFORM_DUCKDB_PATH", raising=False)
        environment.current.cache_clear()
        prepare_manifest(project_dir)
    environment.current.cache_clear()
    return project_dir


@pytest.fixture(scope="session")
def platform_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[environment.PlatformEnvironment]:
    """A local environment of its own (warehouse file, instance) for the whole session, no app database."""
    local_dir = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("PLATFORM_ENV", "PLATFORM_DUCKDB_PATH", "PLATFORM_APP_DB_URL"):
            patch.delenv(variable, raising=False)
        patch.setenv("PLATFORM_LOCAL_DIR", str(local_dir))
        environment.current.cache_clear()
        yield environment.current()
    environment.current.cache_clear()


def build_component_defs(project_dir: Path) -> dg.Definitions:
    """The component as defs.yaml declares it, pointed at `project_dir`."""
    declared = yaml.safe_load(TRANSFORMATION_DEFS.read_text())["attributes"]
    component = DbtDomainsComponent(**{**declared, "project_dir": str(project_dir)})
    return component.build_defs(dg.ComponentTree.for_test().load_context)


def materialize_groups(
    defs: dg.Definitions, *groups: str, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(defs.assets or []),
        selection=dg.AssetSelection.groups(*groups),
        resources=dict(defs.resources or {}),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def tables_in(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as connection:
        rows = connection.execute("select table_schema, table_name from information_schema.tables").fetchall()
    return {f"{schema}.{table}" for schema, table in rows}


@pytest.fixture(scope="session")
def transformation_defs(
    dbt_project_copy: Path, platform_env: environment.PlatformEnvironment
) -> dg.Definitions:
    return build_component_defs(dbt_project_copy)


@pytest.fixture(scope="session")
def staging_built(transformation_defs: dg.Definitions, platform_env: environment.PlatformEnvironment) -> Path:
    write_raw_tables(platform_env.duckdb_path)
    materialize_groups(transformation_defs, "staging")
    return platform_env.duckdb_path


@pytest.fixture(scope="session")
def finance_run(
    transformation_defs: dg.Definitions, staging_built: Path
) -> tuple[dg.ExecuteInProcessResult, set[str]]:
    """Materialize group finance on a warehouse holding only staging; tables right after the run."""
    result = materialize_groups(transformation_defs, "finance")
    return result, tables_in(staging_built)


@pytest.fixture(scope="session")
def warehouse(transformation_defs: dg.Definitions, finance_run: object, staging_built: Path) -> Path:
    """Every domain built on the sample company."""
    materialize_groups(transformation_defs, "marketing", "sales")
    return staging_built


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()
