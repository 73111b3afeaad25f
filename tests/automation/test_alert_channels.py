"""Alert channels declared in defs.yaml: a channel type registered by name, skipping, and load errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from pydantic import Field

from platform_assets.automation import alerts
from platform_assets.automation.alerts import Alert, AlertChannel, AlertDeliveryError, AlertsResource
from platform_assets.components.automation import AutomationComponent

ALERT = Alert(title="Run failed: job ingestion_cycle", severity="error", assets=["raw/landing/invoices"])


class PagerChannel(AlertChannel):
    """A made-up pager API: a routing key (secret) and a priority."""

    secret_fields = ("routing_key_env",)
    name: str = "pager"
    routing_key_env: str
    priority: int = Field(default=3, ge=1, le=5)

    def send(self, alert: Alert, logger) -> None:
        key = self.required("routing_key_env")
        if key.startswith("broken"):
            raise ConnectionError(f"pager API refused routing key {key}")
        sent.append((key, self.priority, alert.title))


sent: list[tuple[str, int, str]] = []


@pytest.fixture
def pager(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The `pager` type registered the way a new channel type registers itself."""
    alerts.channel_type("pager")(PagerChannel)
    sent.clear()
    monkeypatch.delenv("PAGER_ROUTING_KEY", raising=False)
    yield
    alerts.CHANNEL_TYPES.pop("pager")


def test_a_registered_channel_type_is_declared_by_name_and_gets_every_alert(pager, monkeypatch) -> None:
    monkeypatch.setenv("PAGER_ROUTING_KEY", "rk-123")
    resource = AlertsResource(
        channels=[{"type": "pager", "routing_key_env": "PAGER_ROUTING_KEY", "priority": 1}]
    )
    assert resource.send(ALERT) == ["log", "pager"], "the log first, though not declared"
    assert sent == [("rk-123", 1, ALERT.title)]


def test_a_channel_is_skipped_while_its_enabled_if_set_variable_is_unset(pager, monkeypatch) -> None:
    declared = {
        "type": "pager",
        "routing_key_env": "PAGER_ROUTING_KEY",
        "enabled_if_set": "PAGER_ROUTING_KEY",
    }
    assert AlertsResource(channels=[declared]).send(ALERT) == ["log"] and sent == []
    monkeypatch.setenv("PAGER_ROUTING_KEY", "rk-1")
    assert AlertsResource(channels=[declared]).send(ALERT) == ["log", "pager"]


def test_failed_channels_are_named_without_their_secrets_after_every_channel_was_tried(
    pager, monkeypatch
) -> None:
    monkeypatch.setenv("PAGER_ROUTING_KEY", "broken-secret-key")
    monkeypatch.delenv("UNSET_WEBHOOK", raising=False)
    resource = AlertsResource(
        channels=[
            {"type": "slack_webhook", "url_env": "UNSET_WEBHOOK"},
            {"type": "pager", "routing_key_env": "PAGER_ROUTING_KEY", "name": "oncall"},
            {"type": "pager", "routing_key_env": "OTHER_KEY"},
        ]
    )
    monkeypatch.setenv("OTHER_KEY", "rk-ok")
    with pytest.raises(AlertDeliveryError) as error:
        resource.send(ALERT)
    message = str(error.value)
    assert "slack (AlertDeliveryError: UNSET_WEBHOOK (url_env) is not set)" in message
    assert "oncall (ConnectionError: pager API refused routing key ***)" in message
    assert "broken-secret-key" not in message
    assert sent == [("rk-ok", 3, ALERT.title)], "a broken channel does not stop the others"


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        (
            [{"type": "log"}, {"type": "pagr"}],
            r"alerts\.channels\[1\]\.type: 'pagr' is not a channel type \(types: ",
        ),
        ([{"type": "slack_webhook"}], r"alerts\.channels\[0\]\.url_env: Field required"),
        (
            [{"type": "slack_webhook", "url": "https://hooks.example/x"}],
            r"alerts\.channels\[0\]\.url: Extra inputs are not permitted",
        ),
        (
            [{"type": "pager", "routing_key_env": "K", "priority": 9}],
            r"alerts\.channels\[0\]\.priority: Input should be less than or equal to 5",
        ),
    ],
)
def test_unknown_types_and_bad_settings_fail_load_naming_defs_yaml_index_and_key(
    pager, tmp_path: Path, channels: list[dict], expected: str
) -> None:
    (tmp_path / "sources.yaml").write_text("sources: {}\n")
    component = AutomationComponent.model_validate(
        {"sources_file": str(tmp_path / "sources.yaml"), "alerts": {"channels": channels}}
    )
    with pytest.raises(alerts.AlertConfigError, match=r"defs\.yaml: " + expected):
        component.build_defs(dg.ComponentTree.for_test().load_context)
