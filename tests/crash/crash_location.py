"""A code location for the crash suite: one Salesforce sync asset (insert mode, the mode where a lost result
would duplicate records) over a small model, in the `warehouse` pool, with the platform's executor.

Loaded by `dagster asset materialize -f` in a process the tests SIGKILL. Settings come from CRASH_SF_URL and
the platform environment (PLATFORM_LOCAL_DIR, DAGSTER_HOME).
"""

from __future__ import annotations

import os

import dagster as dg

from platform_assets.automation.dead_runs import with_worker_identity
from platform_assets.components.salesforce_syncs import build_sync_asset
from platform_assets.dbt_manifest import DbtModel
from platform_assets.environment import SANDBOX_SALESFORCE_CLIENT_ID, SANDBOX_SALESFORCE_CLIENT_SECRET
from platform_assets.integrations.salesforce.resource import SalesforceResource
from platform_assets.integrations.salesforce.sync_spec import SyncSpec
from platform_assets.resources import warehouse_resource

MODEL = "act_crash_leads"
SPEC = SyncSpec(
    name="crash_leads",
    model=MODEL,
    object="Lead",
    mode="insert",
    primary_key="signup_id",
    mapping={"FirstName": "FirstName", "LastName": "LastName", "Company": "Company", "Email": "Email"},
    batch_size=int(os.environ.get("CRASH_BATCH_SIZE", "10000")),
    source_file="tests/crash/crash_location.py",
)

defs = dg.Definitions(
    assets=[build_sync_asset(SPEC, DbtModel(MODEL, dg.AssetKey(["activation", MODEL])), "warehouse")],
    resources={
        "salesforce": SalesforceResource(
            login_url=os.environ.get("CRASH_SF_URL", "http://127.0.0.1:1"),
            client_id=SANDBOX_SALESFORCE_CLIENT_ID,
            client_secret=SANDBOX_SALESFORCE_CLIENT_SECRET,
            max_attempts=2,
            backoff_initial=0.05,
            backoff_max=0.1,
            poll_interval=0.05,
            timeout=10.0,
        ),
        "warehouse": warehouse_resource(),
    },
    executor=with_worker_identity(dg.in_process_executor),
)
