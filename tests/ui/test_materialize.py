"""A user materializes the finance domain from the lineage page, sees the run succeed and the row counts."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def test_user_materializes_finance_domain_from_lineage_page_and_run_succeeds(finance_run) -> None:
    assert finance_run.status == "Success", (
        f"run {finance_run.run_id} ended {finance_run.status}:\n{finance_run.failure_summary}"
    )


@pytest.mark.parametrize(
    "key",
    [
        ("raw", "landing", "subscriptions"),
        ("raw", "salesforce", "account"),
        pytest.param(
            ("finance", "fin_mrr"),
            marks=pytest.mark.xfail(
                strict=True,
                reason="dbt models report no dagster/row_count yet (dbt_domains.py streams dbt build "
                "without .fetch_row_counts()); remove this mark when they do",
            ),
        ),
    ],
    ids="/".join,
)
def test_materialized_asset_page_shows_row_count(finance_run, ui, key: tuple[str, ...]) -> None:
    finance_run.require_success()
    ui.open_asset(*key)
    row_count = ui.status_value("Row count", timeout_ms=15_000)
    assert re.fullmatch(r"[1-9][\d,]*", row_count), f"{'/'.join(key)} shows row count {row_count!r}"
    if key == ("raw", "salesforce", "account"):
        ui.settle()
        ui.screenshot("asset_row_count")
