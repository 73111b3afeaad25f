"""Pluggable alert delivery to the channels declared in defs/automation/defs.yaml (`alerts.channels`).

A channel type is one `AlertChannel` subclass (a pydantic model of its settings) registered by name with
`@channel_type("<type>")`; built in: `log` (always gets a line, first, declared or not), `slack_webhook`
(a Slack-compatible incoming webhook), `email` (SMTP). Declarations name environment variables, never
values (`url_env: PLATFORM_ALERT_SLACK_WEBHOOK_URL`); values are read with dg.EnvVar when an alert is sent,
never logged, and secrets are redacted from delivery errors. `enabled_if_set: <VARIABLE>` skips a channel
while that variable is unset or empty.
"""

from __future__ import annotations

import logging
import smtplib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, ClassVar, Literal, TypeVar

import dagster as dg
import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
LOGGER = logging.getLogger("platform_assets.alerts")

Severity = Literal["error", "warning", "info"]
Logger = logging.Logger | dg.DagsterLogManager


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


class AlertDeliveryError(RuntimeError):
    """At least one channel failed; the message lists which (without secrets)."""


class AlertConfigError(ValueError):
    """alerts.channels declares an unknown type or bad settings; names the file, channel index and key."""


class RetryableWebhookStatus(Exception):
    """HTTP 429 or 5xx from the webhook: worth another try."""


def env_value(variable: str | None) -> str | None:
    """The variable's value now (dg.EnvVar, read at use), None when unnamed, unset or empty."""
    return (dg.EnvVar(variable).get_value() or None) if variable else None


# -- channel types --------------------------------------------------------------------------------------


class AlertChannel(BaseModel, ABC):
    """A channel's declared settings and how it sends. Subclass, then register with @channel_type."""

    model_config = ConfigDict(extra="forbid")
    secret_fields: ClassVar[tuple[str, ...]] = ()
    """Fields naming the variables whose values are secrets (redacted from errors)."""

    type: str
    name: str = Field(default="", description="Reported in delivery results and errors; default: the type.")
    enabled_if_set: str | None = Field(
        default=None, description="Environment variable; while it is unset or empty the channel is skipped."
    )

    @model_validator(mode="after")
    def _default_name(self) -> AlertChannel:
        self.name = self.name or self.type
        return self

    def enabled(self) -> bool:
        return self.enabled_if_set is None or env_value(self.enabled_if_set) is not None

    def secrets(self) -> list[str]:
        return [value for name in self.secret_fields if (value := env_value(getattr(self, name)))]

    @abstractmethod
    def send(self, alert: Alert, logger: Logger | None) -> None:
        """Deliver one alert; raise on failure (the resource names the channel and tries the others)."""

    def required(self, field_name: str) -> str:
        """The value of the variable a field names; fails naming the variable when it is unset."""
        variable = getattr(self, field_name)
        value = env_value(variable)
        if value is None:
            raise AlertDeliveryError(f"{variable} ({field_name}) is not set")
        return value


CHANNEL_TYPES: dict[str, type[AlertChannel]] = {}
Channel = TypeVar("Channel", bound=type[AlertChannel])


def channel_type(name: str) -> Callable[[Channel], Channel]:
    """Register a channel class under the `type:` that alerts.channels declares it with."""

    def register(cls: Channel) -> Channel:
        CHANNEL_TYPES[name] = cls
        return cls

    return register


@channel_type("log")
class LogChannel(AlertChannel):
    type: str = "log"
    name: str = "log"

    def enabled(self) -> bool:
        return True  # the log always gets a line

    def send(self, alert: Alert, logger: Logger | None) -> None:
        level = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}[alert.severity]
        (logger or LOGGER).log(level, "ALERT " + alert.text().replace("\n", " | "))


@channel_type("slack_webhook")
class SlackWebhookChannel(AlertChannel):
    """A Slack (or Mattermost, Teams-compatible) incoming webhook."""

    secret_fields = ("url_env",)
    name: str = "slack"
    url_env: str = Field(description="Variable holding the webhook URL (a secret).")
    timeout_seconds: float = 10.0

    def send(self, alert: Alert, logger: Logger | None) -> None:
        _post(self.required("url_env"), alert.text(), self.timeout_seconds)


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=4),
    retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout, RetryableWebhookStatus)),
    reraise=True,
)
def _post(url: str, text: str, timeout_seconds: float) -> None:
    response = requests.post(url, json={"text": text}, timeout=timeout_seconds)
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableWebhookStatus(f"webhook answered HTTP {response.status_code}")
    if response.status_code >= 400:
        raise AlertDeliveryError(f"webhook answered HTTP {response.status_code}: {response.text[:200]}")


@channel_type("email")
class EmailChannel(AlertChannel):
    """E-mail through an SMTP server; every setting is the name of the variable holding it."""

    secret_fields = ("password_env",)
    name: str = "email"
    host_env: str
    port_env: str | None = None
    port: int = Field(default=25, description="Used where port_env is unset.")
    from_env: str
    to_env: str = Field(description="Variable holding comma-separated recipients.")
    user_env: str | None = None
    password_env: str | None = None
    starttls_env: str | None = Field(default=None, description="true/1/yes upgrades the connection to TLS.")
    timeout_seconds: float = 10.0

    def send(self, alert: Alert, logger: Logger | None) -> None:
        host = self.required("host_env")
        sender = env_value(self.from_env)
        recipients = [r.strip() for r in (env_value(self.to_env) or "").split(",") if r.strip()]
        if not sender or not recipients:
            raise AlertDeliveryError(
                f"{self.host_env} is set but {self.from_env} or {self.to_env} is empty: set both (TO is a "
                "comma-separated list) or unset the host."
            )
        message = EmailMessage()
        message["Subject"] = f"[platform {alert.severity}] {alert.title}"
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message.set_content(alert.text())
        port = int(env_value(self.port_env) or self.port)
        with smtplib.SMTP(host, port, timeout=self.timeout_seconds) as smtp:
            if (env_value(self.starttls_env) or "").strip().lower() in ("1", "true", "yes"):
                smtp.starttls()
            if username := env_value(self.user_env):
                smtp.login(username, env_value(self.password_env) or "")
            smtp.send_message(message)


def parse_channels(
    declared: Sequence[Mapping[str, Any]], where: str = "alerts.channels"
) -> list[AlertChannel]:
    """The declared channels as their registered types; fails naming the channel index and key."""
    channels = []
    for index, declaration in enumerate(declared):
        kind = declaration.get("type")
        if kind not in CHANNEL_TYPES:
            raise AlertConfigError(
                f"{where}[{index}].type: {kind!r} is not a channel type (types: {', '.join(CHANNEL_TYPES)})"
            )
        try:
            channels.append(CHANNEL_TYPES[kind].model_validate(declaration))
        except ValidationError as error:
            raise AlertConfigError(
                "; ".join(
                    f"{where}[{index}].{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
                )
            ) from None
    return channels


# -- the resource ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notifier:
    """A channel bound to the caller's logger (a Dagster context's log, or the module logger)."""

    channel: AlertChannel
    logger: Logger | None = None

    @property
    def name(self) -> str:
        return self.channel.name

    def send(self, alert: Alert) -> None:
        self.channel.send(alert, self.logger)


class AlertsResource(dg.ConfigurableResource):
    """Sends alerts to every declared channel that is enabled; the log always gets a line, first."""

    channels: list[dict[str, Any]] = Field(
        default_factory=list,
        description="alerts.channels of defs/automation/defs.yaml: settings and variable names, no values.",
    )
    dagster_url: str = Field(default=DEFAULT_DAGSTER_URL, description="Base of the links in messages.")
    dagster_url_env: str | None = Field(default=None, description="Variable overriding dagster_url.")

    def notifiers(self, logger: Logger | None = None) -> list[Notifier]:
        channels = parse_channels(self.channels)
        if not any(isinstance(channel, LogChannel) for channel in channels):
            channels.append(LogChannel())
        channels.sort(key=lambda channel: not isinstance(channel, LogChannel))
        return [Notifier(channel, logger) for channel in channels if channel.enabled()]

    def send(self, alert: Alert, logger: Logger | None = None) -> list[str]:
        """Try every channel; raise naming the failed ones so the caller retries (nothing is lost)."""
        delivered, failed = [], []
        notifiers = self.notifiers(logger)
        for notifier in notifiers:
            try:
                notifier.send(alert)
                delivered.append(notifier.name)
            except Exception as error:  # one broken channel must not stop the others
                failed.append(f"{notifier.name} ({type(error).__name__}: {_redact(str(error), notifiers)})")
        if failed:
            raise AlertDeliveryError(f"alert {alert.title!r} not delivered to: {'; '.join(failed)}")
        return delivered

    def base_url(self) -> str:
        return (env_value(self.dagster_url_env) or self.dagster_url).rstrip("/")

    def run_url(self, run_id: str) -> str:
        return f"{self.base_url()}/runs/{run_id}"

    def asset_url(self, key: dg.AssetKey) -> str:
        return f"{self.base_url()}/assets/{'/'.join(key.path)}"


def _redact(text: str, notifiers: Sequence[Notifier]) -> str:
    for secret in (secret for notifier in notifiers for secret in notifier.channel.secrets()):
        text = text.replace(secret, "***")
    return text
