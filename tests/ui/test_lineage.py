"""The global asset lineage: a user sees the platform's layers as groups, in flow order."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

# Groups the contract fixes for a local platform (app_db only ingests where PLATFORM_APP_DB_URL is set).
INGESTION_GROUPS = ("ingestion_landing", "ingestion_salesforce")
TRANSFORMATION_GROUPS = ("staging", "finance", "marketing", "sales")
ACTIVATION_GROUPS = ("activation",)


def test_lineage_graph_shows_ingestion_transformation_and_activation_groups(ui) -> None:
    ui.open("/asset-groups")
    for group in (*INGESTION_GROUPS, *TRANSFORMATION_GROUPS, *ACTIVATION_GROUPS):
        node = ui.graph_group(group)
        node.wait_for()
        assert node.is_visible(), f"group {group} is not drawn in the lineage graph"
    ui.settle()
    ui.screenshot("lineage")


def test_lineage_graph_draws_layers_left_to_right(ui) -> None:
    """Ingestion groups sit left of transformation groups, which sit left of activation."""
    ui.open("/asset-groups")

    def left_edge(group: str) -> float:
        node = ui.graph_group(group)
        node.wait_for()
        box = node.bounding_box()
        assert box is not None, f"group {group} has no position in the graph"
        return box["x"]

    ingestion = max(left_edge(g) for g in INGESTION_GROUPS)
    staging = left_edge("staging")
    marts = min(left_edge(g) for g in ("finance", "marketing", "sales"))
    activation = left_edge("activation")
    assert ingestion < staging < marts < activation, (
        f"layers out of order: ingestion x={ingestion}, staging x={staging}, marts x={marts}, "
        f"activation x={activation}"
    )
