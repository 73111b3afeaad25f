"""Alert channels against real loopback servers, and the on-failure / on-success paths."""

from __future__ import annotations

import logging

import dagster as dg
import pytest

from platform_assets.automation.alerts import Alert, AlertDeliveryError, AlertsResource
from platform_assets.automation.jobs import (
    CYCLE_ASSET_KEY,
    RECOVERY_JOB,
    cycle_failure_recovery,
    cycle_status_asset,
)
from platform_assets.automation.path_sensors import build_run_failure_sensor, build_run_success_sensor

ALERT = Alert(
    title="Run failed: job ingestion_cycle",
    severity="error",
    assets=["raw/landing/invoices"],
    error="tap-landing: invoices/2026-03-01.csv line 3: bad decimal 'abc'",
    link="http://127.0.0.1:3000/runs/abc123",
)


def test_webhook_alert_names_assets_error_and_run_link(webhook, declared_alerts) -> None:
    delivered = declared_alerts(PLATFORM_ALERT_SLACK_WEBHOOK_URL=webhook.url).send(ALERT)
    assert delivered == ["log", "slack"]
    text = webhook.messages[0]["text"]
    assert "raw/landing/invoices" in text and "bad decimal 'abc'" in text and "/runs/abc123" in text


def test_webhook_alert_retries_a_temporary_failure(webhook, declared_alerts) -> None:
    webhook.fail_next.extend([503, 429])
    declared_alerts(PLATFORM_ALERT_SLACK_WEBHOOK_URL=webhook.url).send(ALERT)
    assert len(webhook.messages) == 1


def test_broken_channel_raises_without_leaking_the_webhook_secret(webhook, declared_alerts) -> None:
    webhook.fail_next.append(404)
    with pytest.raises(AlertDeliveryError, match="slack") as error:
        declared_alerts(PLATFORM_ALERT_SLACK_WEBHOOK_URL=webhook.url).send(ALERT)
    assert "XXXX" not in str(error.value)


def test_email_alert_reaches_the_smtp_server(mailbox, declared_alerts) -> None:
    resource = declared_alerts(
        PLATFORM_ALERT_SMTP_HOST="127.0.0.1",
        PLATFORM_ALERT_SMTP_PORT=str(mailbox.port),
        PLATFORM_ALERT_SMTP_FROM="dagster@example.com",
        PLATFORM_ALERT_SMTP_TO="data@example.com, oncall@example.com",
    )
    assert resource.send(ALERT) == ["log", "email"]
    (message,) = mailbox.messages
    assert message["Subject"] == "[platform error] Run failed: job ingestion_cycle"
    assert "raw/landing/invoices" in message.get_payload()
    assert mailbox.envelopes[0] == ("dagster@example.com", ["data@example.com", "oncall@example.com"])


def test_default_alert_is_a_clear_log_line(caplog: pytest.LogCaptureFixture, declared_alerts) -> None:
    with caplog.at_level(logging.ERROR, logger="platform_assets.alerts"):
        assert declared_alerts().send(ALERT) == ["log"]
    assert (
        "ALERT [platform ERROR] Run failed: job ingestion_cycle | Assets: raw/landing/invoices" in caplog.text
    )


def test_alert_channels_come_from_environment_variables(mailbox, declared_alerts) -> None:
    alerts = declared_alerts(
        PLATFORM_ALERT_SMTP_HOST="127.0.0.1",
        PLATFORM_ALERT_SMTP_PORT=str(mailbox.port),
        PLATFORM_ALERT_SMTP_FROM="dagster@example.com",
        PLATFORM_ALERT_SMTP_TO="data@example.com",
        PLATFORM_DAGSTER_URL="https://dagster.example.com/",
    ).process_config_and_initialize()  # as Dagster hands it to a run
    assert alerts.send(ALERT) == ["log", "email"]
    assert alerts.run_url("r1") == "https://dagster.example.com/runs/r1"


def test_email_configured_without_recipients_fails_naming_the_variables(declared_alerts) -> None:
    with pytest.raises(AlertDeliveryError, match="PLATFORM_ALERT_SMTP_FROM or PLATFORM_ALERT_SMTP_TO"):
        declared_alerts(PLATFORM_ALERT_SMTP_HOST="127.0.0.1").send(ALERT)


# ---------------------------------------------------------------- conditional paths


@dg.asset(key=["raw", "landing", "invoices"], tags={"layer": "ingestion"})
def broken_stream() -> None:
    raise ValueError("invoices/2026-03-01.csv line 3: bad decimal 'abc'")


@dg.asset(key=["salesforce", "account_arr"], tags={"layer": "activation"})
def healthy_sync() -> None:
    return None


def _defs(alerts: AlertsResource) -> dg.Definitions:
    failure = build_run_failure_sensor(cycle_failure_recovery, dg.DefaultSensorStatus.STOPPED)
    success = build_run_success_sensor(dg.DefaultSensorStatus.STOPPED, excluded_jobs=[RECOVERY_JOB])
    return dg.Definitions(
        assets=[broken_stream, healthy_sync, cycle_status_asset()],
        jobs=[cycle_failure_recovery, dg.define_asset_job("work", selection=[broken_stream, healthy_sync])],
        sensors=[failure, success],
        resources={"alerts": alerts},
    )


def _cycle_observations(instance: dg.DagsterInstance) -> list[dict]:
    records = instance.fetch_observations(CYCLE_ASSET_KEY, limit=10).records
    return [
        {name: value.value for name, value in record.asset_observation.metadata.items()} for record in records
    ]


def test_failed_run_launches_recovery_that_marks_the_cycle_failed_and_alerts(
    webhook, declared_alerts
) -> None:
    alerts = declared_alerts(
        PLATFORM_ALERT_SLACK_WEBHOOK_URL=webhook.url, PLATFORM_DAGSTER_URL="http://dagster.example:3000"
    )
    defs = _defs(alerts)
    instance = dg.DagsterInstance.ephemeral()
    failed = defs.resolve_job_def("work").execute_in_process(
        instance=instance, asset_selection=[broken_stream.key], raise_on_error=False
    )
    assert not failed.success

    sensor = defs.resolve_sensor_def("cycle_on_failure")
    context = dg.build_run_status_sensor_context(
        sensor_name="cycle_on_failure",
        dagster_instance=instance,
        dagster_run=failed.dagster_run,
        dagster_event=failed.get_run_failure_event(),
        resources={"alerts": alerts},
        repository_def=defs.get_repository_def(),
    ).for_run_failure()
    request = sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key == f"recover:{failed.run_id}"
    report = request.run_config["ops"]["record_cycle_failure"]["config"]
    assert report["assets"] == ["raw/landing/invoices"] and "bad decimal" in report["error"]

    recovery = defs.resolve_job_def(RECOVERY_JOB).execute_in_process(
        instance=instance, run_config=request.run_config, resources={"alerts": alerts}
    )
    assert recovery.success
    (text,) = [message["text"] for message in webhook.messages]
    assert "raw/landing/invoices" in text and "bad decimal" in text
    assert f"http://dagster.example:3000/runs/{failed.run_id}" in text
    (observation,) = _cycle_observations(instance)
    assert observation["status"] == "failed" and observation["failed_run_id"] == failed.run_id


def test_successful_activation_run_records_the_cycle_and_posts_a_summary(webhook, declared_alerts) -> None:
    alerts = declared_alerts(PLATFORM_ALERT_SLACK_WEBHOOK_URL=webhook.url)
    defs = _defs(alerts)
    instance = dg.DagsterInstance.ephemeral()
    run = defs.resolve_job_def("work").execute_in_process(
        instance=instance, asset_selection=[healthy_sync.key]
    )
    sensor = defs.resolve_sensor_def("cycle_on_success")
    context = dg.build_run_status_sensor_context(
        sensor_name="cycle_on_success",
        dagster_instance=instance,
        dagster_run=run.dagster_run,
        dagster_event=run.get_run_success_event(),
        resources={"alerts": alerts},
        repository_def=defs.get_repository_def(),
    )
    sensor(context)
    (text,) = [message["text"] for message in webhook.messages]
    assert "Cycle step succeeded" in text and "salesforce/account_arr" in text
    (observation,) = _cycle_observations(instance)
    assert observation["status"] == "succeeded" and observation["run_id"] == run.run_id
