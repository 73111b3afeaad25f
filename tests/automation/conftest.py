"""Loopback servers that receive the platform's alerts: a Slack-compatible webhook and an SMTP server."""

from __future__ import annotations

import json
import os
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from platform_assets import environment
from platform_assets.automation.alerts import AlertsResource
from platform_assets.components.automation import AlertSettings, alerts_resource


@dataclass
class Webhook:
    url: str
    messages: list[dict] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    """HTTP statuses to answer before succeeding (to test retries)."""


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = hook.fail_next.pop(0) if hook.fail_next else 200
            if status == 200:
                hook.messages.append(json.loads(body))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/XXXX"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    port: int
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough of RFC 5321 for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self) -> None:
        mailbox: Mailbox = self.server.mailbox  # type: ignore[attr-defined]
        sender, recipients = "", []
        self.reply("220 loopback ESMTP")
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command[:4].upper()
            if verb == "EHLO":
                self.reply("250-loopback")
                self.reply("250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 loopback")
            elif verb == "MAIL":
                sender = command.split(":", 1)[1].strip().strip("<>").split(">")[0]
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = bytearray()
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                mailbox.messages.append(message_from_bytes(bytes(data)))
                mailbox.envelopes.append((sender, recipients))
                sender, recipients = "", []
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:  # RSET, NOOP
                self.reply("250 OK")


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    box = Mailbox(port=server.server_address[1])
    server.mailbox = box  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


DEFS_YAML = environment.PROJECT_ROOT / "platform_assets" / "defs" / "automation" / "defs.yaml"


@pytest.fixture
def declared_alerts(monkeypatch: pytest.MonkeyPatch) -> Callable[..., AlertsResource]:
    """`declared_alerts(VARIABLE=value, …)`: the alerts resource of the repo's defs.yaml, in an environment
    where only the given alert variables are set."""
    for variable in [v for v in os.environ if v.startswith("PLATFORM_ALERT_") or v == "PLATFORM_DAGSTER_URL"]:
        monkeypatch.delenv(variable)
    settings = AlertSettings.model_validate(yaml.safe_load(DEFS_YAML.read_text())["attributes"]["alerts"])

    def build(**variables: str) -> AlertsResource:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return alerts_resource(settings, str(DEFS_YAML))

    return build
