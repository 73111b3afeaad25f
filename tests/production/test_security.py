"""Configuration that reaches SQL is validated or quoted (the secrets checks run in test_topology.py)."""

from __future__ import annotations

import pytest

from platform_assets.warehouse import quote_identifier


@pytest.mark.parametrize(
    "name", ["raw_landing", "ACT_SALESFORCE_LEADS", "_private", "ci_feature_x_sales", "a$b"]
)
def test_plain_identifiers_are_double_quoted(name: str) -> None:
    assert quote_identifier(name) == f'"{name}"'


@pytest.mark.parametrize(
    "name",
    [
        'leads"; drop table raw_salesforce.account; --',
        "leads; delete from x",
        "sales.leads",
        "two words",
        "1leads",
        "",
        "lead'--",
        "naïve",
        "x" * 256,
    ],
)
def test_identifiers_that_could_change_a_statement_are_refused_with_the_name(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid warehouse identifier"):
        quote_identifier(name)
