"""Pluggable alert delivery: the log (always), a Slack-compatible incoming webhook, e-mail.

Channels are configured only by environment variables (read when the code location loads; the values are
secrets and never logged):
  PLATFORM_ALERT_SLACK_WEBHOOK_URL   Slack (or Mattermost, Teams-compatible) incoming webhook URL
  PLATFORM_ALERT_SMTP_HOST/PORT      SMTP server (port 25 by default)
  PLATFORM_ALERT_SMTP_FROM/TO        sender, and comma-separated recipients
  PLATFORM_ALERT_SMTP_USER/PASSWORD  optional login;  PLATFORM_ALERT_SMTP_STARTTLS=true to upgrade to TLS
  PLATFORM_DAGSTER_URL               base of the links in messages (default http://127.0.0.1:3000)
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal, Protocol

import dagster as dg
import requests
from pydantic import Field
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
LOGGER = logging.getLogger("platform_assets.alerts")

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Alert:
    title: str
    severity: Severity
    assets: Sequence[str] = ()
    error: str | None = None
    link: str | None = None
    link_label: str = "Run"
    details: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def text(self) -> str:
        """One message naming the assets, the error and the link, for any channel."""
        lines = [f"[platform {self.severity.upper()}] {self.title}"]
        if self.assets:
            lines.append("Assets: " + ", ".join(self.assets))
        if self.error:
            lines.append("Error: " + self.error.strip())
        lines.extend(f"{name}: {value}" for name, value in self.details)
        if self.link:
            lines.append(f"{self.link_label}: {self.link}")
        return "\n".join(lines)


class Notifier(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


class AlertDeliveryError(RuntimeError):
    """At least one channel failed; the message lists which (without secrets)."""


class RetryableWebhookStatus(Exception):
    """HTTP 429 or 5xx from the webhook: worth another try."""


@dataclass
class LogNotifier:
    logger: logging.Logger | dg.DagsterLogManager | None = None
    name: str = "log"

    def send(self, alert: Alert) -> None:
        level = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}[alert.severity]
        (self.logger or LOGGER).log(level, "ALERT " + alert.text().replace("\n", " | "))


@dataclass
class SlackWebhookNotifier:
    url: str
    timeout_seconds: float = 10.0
    name: str = "slack"

    @retry(
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.5, max=4),
        retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout, RetryableWebhookStatus)),
        reraise=True,
    )
    def send(self, alert: Alert) -> None:
        response = requests.post(self.url, json={"text": alert.text()}, timeout=self.timeout_seconds)
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableWebhookStatus(f"webhook answered HTTP {response.status_code}")
        if response.status_code >= 400:
            raise AlertDeliveryError(f"webhook answered HTTP {response.status_code}: {response.text[:200]}")


@dataclass
class EmailNotifier:
    host: str
    port: int
    sender: str
    recipients: Sequence[str]
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_seconds: float = 10.0
    name: str = "email"

    def send(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = f"[platform {alert.severity}] {alert.title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(alert.text())
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


class AlertsResource(dg.ConfigurableResource):
    """Sends alerts to every configured channel; the log always gets a line."""

    slack_webhook_url: str | None = Field(default=None, description="Incoming webhook (secret).")
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str | None = None
    smtp_to: str | None = Field(default=None, description="Comma-separated recipients.")
    smtp_user: str | None = None
    smtp_password: str | None = Field(default=None, description="Secret.")
    smtp_starttls: bool = False
    dagster_url: str = DEFAULT_DAGSTER_URL

    def notifiers(self, logger: logging.Logger | dg.DagsterLogManager | None = None) -> list[Notifier]:
        channels: list[Notifier] = [LogNotifier(logger)]
        if self.slack_webhook_url:
            channels.append(SlackWebhookNotifier(self.slack_webhook_url))
        if self.smtp_host:
            recipients = [r.strip() for r in (self.smtp_to or "").split(",") if r.strip()]
            if not self.smtp_from or not recipients:
                raise AlertDeliveryError(
                    "PLATFORM_ALERT_SMTP_HOST is set but PLATFORM_ALERT_SMTP_FROM or PLATFORM_ALERT_SMTP_TO "
                    "is empty: set both (TO is a comma-separated list) or unset the host."
                )
            channels.append(
                EmailNotifier(
                    self.smtp_host,
                    self.smtp_port,
                    self.smtp_from,
                    recipients,
                    self.smtp_user,
                    self.smtp_password,
                    self.smtp_starttls,
                )
            )
        return channels

    def send(self, alert: Alert, logger: logging.Logger | dg.DagsterLogManager | None = None) -> list[str]:
        """Try every channel; raise naming the failed ones so the caller retries (nothing is lost)."""
        delivered, failed = [], []
        for channel in self.notifiers(logger):
            try:
                channel.send(alert)
                delivered.append(channel.name)
            except Exception as error:  # one broken channel must not stop the others
                failed.append(f"{channel.name} ({type(error).__name__}: {_redact(str(error), self)})")
        if failed:
            raise AlertDeliveryError(f"alert {alert.title!r} not delivered to: {'; '.join(failed)}")
        return delivered

    def run_url(self, run_id: str) -> str:
        return f"{self.dagster_url.rstrip('/')}/runs/{run_id}"

    def asset_url(self, key: dg.AssetKey) -> str:
        return f"{self.dagster_url.rstrip('/')}/assets/{'/'.join(key.path)}"


def _redact(text: str, resource: AlertsResource) -> str:
    for secret in (resource.slack_webhook_url, resource.smtp_password):
        if secret:
            text = text.replace(secret, "***")
    return text


ALERT_ENV = {
    "slack_webhook_url": "PLATFORM_ALERT_SLACK_WEBHOOK_URL",
    "smtp_host": "PLATFORM_ALERT_SMTP_HOST",
    "smtp_port": "PLATFORM_ALERT_SMTP_PORT",
    "smtp_from": "PLATFORM_ALERT_SMTP_FROM",
    "smtp_to": "PLATFORM_ALERT_SMTP_TO",
    "smtp_user": "PLATFORM_ALERT_SMTP_USER",
    "smtp_password": "PLATFORM_ALERT_SMTP_PASSWORD",
    "smtp_starttls": "PLATFORM_ALERT_SMTP_STARTTLS",
    "dagster_url": "PLATFORM_DAGSTER_URL",
}


def alerts_resource_from_env() -> AlertsResource:
    """Bind each setting that is present to its variable with dg.EnvVar (resolved when used, not logged)."""
    bound: dict[str, object] = {}
    for field_name, variable in ALERT_ENV.items():
        if not os.environ.get(variable):
            continue
        if field_name == "smtp_port":
            bound[field_name] = dg.EnvVar.int(variable)
        elif field_name == "smtp_starttls":
            bound[field_name] = os.environ[variable].strip().lower() in ("1", "true", "yes")
        else:
            bound[field_name] = dg.EnvVar(variable)
    return AlertsResource(**bound)
