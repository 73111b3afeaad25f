"""Asset pages answer a data engineer's first questions about a sync before it ever ran: what it reads,
where it writes, by which key, who owns it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_salesforce_sync_page_shows_object_key_mapping_owner_and_model(ui) -> None:
    ui.open_asset("salesforce", "leads")
    metadata = ui.metadata_table()
    assert metadata.get("salesforce_object") == "Lead", metadata
    assert metadata.get("mode") == "upsert", metadata
    assert metadata.get("external_id_field") == "Signup_Id__c", metadata
    assert "Product_Usage_Score__c" in metadata.get("mapping", ""), "the field mapping is not shown"
    ui.definition_section().get_by_text("revops").first.wait_for()
    ui.upstream_link("activation", "act_salesforce_leads").wait_for()
    ui.settle()
    ui.screenshot("sync_definition")


def test_hightouch_sync_page_shows_destination_key_owner_and_model(ui) -> None:
    ui.open_asset("hightouch", "trial_nurture_braze")
    metadata = ui.metadata_table()
    assert metadata.get("hightouch/destination", "").startswith("Braze"), metadata
    assert metadata.get("hightouch/primary_key") == "email", metadata
    ui.definition_section().get_by_text("marketing").first.wait_for()
    ui.upstream_link("marketing", "mkt_audience_trial_nurture").wait_for()


def test_ingestion_stream_page_names_its_source_and_owner(ui) -> None:
    ui.open_asset("raw", "landing", "subscriptions")
    ui.page.get_by_text("Subscriptions and their status", exact=False).first.wait_for()
    ui.definition_section().get_by_text("finance-data").first.wait_for()
