"""The Automation page: one automation sensor per layer (so each can be paused alone) and the cycle."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

LAYERS = ("ingestion", "transformation", "activation")


def test_automation_page_lists_a_sensor_per_layer_and_the_cycle_schedule(ui) -> None:
    ui.open("/automation")
    rows = ui.page.locator(f'a[href^="/locations/{ui.platform.location}/"]')
    sensors = rows.filter(has_text="Automation condition sensor")
    # The list renders progressively: wait for each layer's row rather than reading the first render.
    for layer in LAYERS:
        sensors.filter(has_text=f"automation_{layer}").first.wait_for()
    condition_rows = sensors.all_inner_texts()
    for layer in LAYERS:
        assert any(layer in row for row in condition_rows), (
            f"no automation condition sensor for the {layer} layer; the page lists {condition_rows}"
        )
    # The page renders each schedule as more than one link (its name, then its row): wait for the row.
    schedule_rows = ui.page.locator(f'a[href^="/locations/{ui.platform.location}/schedules/"]')
    cycle = schedule_rows.filter(has_text="Scheduled").first
    cycle.wait_for()
    assert "platform_cycle_start" in cycle.inner_text(), f"the schedule row reads {cycle.inner_text()!r}"
    ui.settle()
    ui.screenshot("automation")


def test_mart_page_shows_its_layer_sensor_and_freshness_policy_passing_after_a_run(finance_run, ui) -> None:
    finance_run.require_success()
    ui.open_asset("finance", "fin_mrr")
    ui.page.get_by_text("Automation details", exact=True).first.wait_for()
    ui.page.get_by_role("link", name=re.compile(r"automation_transformation")).first.wait_for()
    policy = ui.page.get_by_text(
        re.compile(r"^Fails if more than \d+ (hours?|minutes?) since last materialization$")
    )
    policy.first.wait_for()
    ui.page.get_by_text(
        re.compile(r"^Warns if more than \d+ (hours?|minutes?) since last materialization$")
    ).first.wait_for()
    verdict = ui.poll_with_reloads(lambda: ui.status_value("Freshness policy"), until="Passing", timeout_s=90)
    assert verdict == "Passing", f"fin_mrr was just materialized, yet its freshness reads {verdict!r}"
    policy.first.scroll_into_view_if_needed()
    ui.settle()
    ui.screenshot("freshness")
