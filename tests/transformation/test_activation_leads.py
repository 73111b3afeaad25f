"""act_salesforce_leads on a warehouse of its own: one Lead per email, also within one batch of sign-ups."""

import copy

import pytest

from platform_assets import environment

from . import conftest
from .conftest import BATCH_1, build_component_defs, materialize_groups, query


def _signup(signup_id: str, email: str, signed_up_at: str, line: int) -> dict:
    return {
        "signup_id": signup_id,
        "user_id": f"usr_{signup_id[4:]}",
        "workspace_id": "ws_000009",
        "email": email,
        "first_name": "Noa",
        "last_name": "North",
        "company": "Nine",
        "title": "Engineer",
        "utm_source": "newsletter",
        "campaign_id": None,
        "signed_up_at": signed_up_at,
        "_source_file": "signups/2026-03-01.jsonl",
        "_source_line": line,
        "_sdc_batched_at": BATCH_1,
    }


@pytest.mark.integration
def test_two_signups_of_one_email_in_one_batch_become_one_lead_the_earliest(
    dbt_project_copy, tmp_path, monkeypatch
):
    landing = copy.deepcopy(conftest.LANDING)
    # Same person, different case and spacing, in the same file: the earlier sign-up is the Lead.
    landing["signups"] += [
        _signup("sgn_000091", " Noa@Nine.io", "2026-03-03T10:00:00Z", 101),
        _signup("sgn_000090", "noa@nine.io", "2026-03-03T09:00:00Z", 102),
    ]
    monkeypatch.setattr(conftest, "LANDING", landing)
    for variable in ("PLATFORM_ENV", "PLATFORM_DUCKDB_PATH", "PLATFORM_APP_DB_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PLATFORM_LOCAL_DIR", str(tmp_path / "local"))
    environment.current.cache_clear()
    try:
        warehouse = environment.current().duckdb_path
        warehouse.parent.mkdir(parents=True)
        conftest.write_raw_tables(warehouse)
        defs = build_component_defs(dbt_project_copy)
        result = materialize_groups(defs, "staging", "finance", "marketing", "sales", raise_on_error=False)
    finally:
        environment.current.cache_clear()

    rows = query(
        warehouse,
        "select signup_id, Email from activation.act_salesforce_leads where Workspace_Id__c = 'ws_000009'",
    )
    assert rows == [("sgn_000090", "noa@nine.io")]
    checks = {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.asset_key.path == ["activation", "act_salesforce_leads"]
    }
    assert checks["one_new_lead_per_email_act_salesforce_leads"]
    assert result.success
