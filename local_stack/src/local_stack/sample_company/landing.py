"""The landing folder: one folder per stream, CSV/JSONL file drops, written in one streaming pass.

Rows go straight to disk through per-stream writers that roll over to a new file every
`ROWS_PER_FILE` rows; each file is written to a temporary name and published only where no file of that
name exists: a landing file the user edited (or one the pipeline already loaded) is never replaced, unless
`overwrite=True` asks for it (then a file is replaced only when its bytes differ). A second run with the
same seed and scale leaves files and mtimes untouched either way.
"""

from __future__ import annotations

import csv
import filecmp
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.sample_company.model import (
    DAY,
    DAY_STRINGS,
    END_EPOCH,
    FIRST_DAY,
    START_EPOCH,
    TIME_OF_DAY,
    Core,
    campaign_count,
    date_of,
    iso,
    iter_cores,
)

ROWS_PER_FILE = 250_000


@dataclass(frozen=True)
class StreamSpec:
    name: str
    format: str  # csv | jsonl
    columns: tuple[str, ...]


STREAMS: dict[str, StreamSpec] = {
    spec.name: spec
    for spec in (
        StreamSpec(
            "workspaces",
            "csv",
            (
                "workspace_id",
                "name",
                "domain",
                "industry",
                "employee_count",
                "country",
                "plan",
                "created_at",
                "updated_at",
            ),
        ),
        StreamSpec(
            "users",
            "csv",
            ("user_id", "workspace_id", "email", "first_name", "last_name", "title", "role", "created_at"),
        ),
        StreamSpec(
            "signups",
            "jsonl",
            (
                "signup_id",
                "user_id",
                "workspace_id",
                "email",
                "first_name",
                "last_name",
                "company",
                "title",
                "utm_source",
                "campaign_id",
                "signed_up_at",
            ),
        ),
        StreamSpec(
            "subscriptions",
            "csv",
            (
                "subscription_id",
                "workspace_id",
                "plan",
                "seats",
                "monthly_amount",
                "status",
                "started_at",
                "canceled_at",
                "updated_at",
            ),
        ),
        StreamSpec(
            "invoices",
            "csv",
            ("invoice_id", "subscription_id", "workspace_id", "amount", "status", "issued_at", "due_at"),
        ),
        StreamSpec("payments", "csv", ("payment_id", "invoice_id", "amount", "method", "paid_at")),
        StreamSpec(
            "usage_events",
            "jsonl",
            ("event_id", "workspace_id", "user_id", "event_type", "quantity", "occurred_at"),
        ),
        StreamSpec(
            "campaigns", "csv", ("campaign_id", "name", "channel", "started_on", "ended_on", "budget")
        ),
        StreamSpec(
            "ad_spend", "csv", ("spend_id", "campaign_id", "spend_date", "impressions", "clicks", "spend")
        ),
    )
}

CHANNELS = ("email", "paid_search", "paid_social", "events", "content")
UTM_BY_CHANNEL = {
    "email": "newsletter",
    "paid_search": "google",
    "paid_social": "linkedin",
    "events": "event",
    "content": "blog",
}
ORGANIC_SOURCES = ("organic", "referral", "direct")
EVENT_TYPES = ("login", "dashboard_viewed", "report_created", "api_call", "export", "invite_sent")
EVENT_WEIGHTS = (30, 35, 10, 15, 6, 4)
PAYMENT_METHODS = ("card", "card", "card", "ach", "wire")
EVENTS_PER_USER_MONTH = {"trialing": 14.0, "active": 8.0, "past_due": 3.0, "canceled": 4.0}


class _RollingWriter:
    """Writes one stream's rows to part-00001.<ext>, part-00002.<ext>, … publishing only missing files
    (or, with `overwrite`, changed ones)."""

    def __init__(self, folder: Path, spec: StreamSpec, rows_per_file: int, overwrite: bool = False):
        self.folder = folder
        self.spec = spec
        self.rows_per_file = rows_per_file
        self.overwrite = overwrite
        self.part = 0
        self.rows_in_part = 0
        self.rows = 0
        self.changed: list[Path] = []
        self.kept: list[Path] = []
        self._handle: Any = None
        self._csv: Any = None
        self._temp: Path | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def _open(self) -> None:
        self.part += 1
        self.rows_in_part = 0
        # Dot-prefixed while being written: tap-landing ignores dot-files, so never reads a half-written drop.
        self._temp = self.folder / f".part-{self.part:05d}.{self.spec.format}.tmp"
        self._handle = self._temp.open("w", newline="", encoding="utf-8")
        if self.spec.format == "csv":
            self._csv = csv.writer(self._handle, lineterminator="\n")
            self._csv.writerow(self.spec.columns)

    def _publish(self) -> None:
        assert self._temp is not None
        self._handle.close()
        target = self.folder / f"part-{self.part:05d}.{self.spec.format}"
        same = target.exists() and filecmp.cmp(self._temp, target, shallow=False)
        if same or (target.exists() and not self.overwrite):
            if not same:  # never replace a landing file that is there: it may hold the user's edits
                self.kept.append(target)
            self._temp.unlink()
        else:
            os.replace(self._temp, target)
            self.changed.append(target)
        self._handle = None

    def _roll(self) -> None:
        if self._handle is None:
            self._open()
        elif self.rows_in_part >= self.rows_per_file:
            self._publish()
            self._open()

    def csv_row(self, row: tuple | list) -> None:
        self._roll()
        self._csv.writerow(row)
        self.rows_in_part += 1
        self.rows += 1

    def json_line(self, line: str) -> None:
        """A pre-serialized JSON object (values built by this module, so no escaping surprises)."""
        self._roll()
        self._handle.write(line)
        self._handle.write("\n")
        self.rows_in_part += 1
        self.rows += 1

    def json_lines(self, lines: list[str]) -> None:
        """Many pre-serialized JSON objects at once, split across files at the roll-over boundary."""
        start = 0
        while start < len(lines):
            self._roll()
            chunk = lines[start : start + self.rows_per_file - self.rows_in_part]
            self._handle.write("\n".join(chunk))
            self._handle.write("\n")
            self.rows_in_part += len(chunk)
            self.rows += len(chunk)
            start += len(chunk)

    def close(self) -> None:
        if self._handle is None and self.part == 0:
            self._open()  # an empty stream still gets a (header-only) file, so the folder exists
        if self._handle is not None:
            self._publish()


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    channel: str
    started: int
    ended: int
    budget: int


def campaigns(scale: float, seed: int) -> list[Campaign]:
    """The marketing calendar (small: a few dozen campaigns even at large scales)."""
    rng = random.Random(f"{seed}:campaigns")
    result = []
    for number in range(1, campaign_count(scale) + 1):
        channel = CHANNELS[(number - 1) % len(CHANNELS)]
        started = START_EPOCH + rng.randint(0, (END_EPOCH - START_EPOCH) // DAY - 30) * DAY
        ended = min(END_EPOCH - DAY, started + rng.randint(14, 90) * DAY)
        budget = rng.randint(20, 400) * 100
        name = f"{date_of(started)[:7]} {channel.replace('_', ' ').title()} #{number}"
        result.append(Campaign(f"cmp_{number:04d}", name, channel, started, ended, budget))
    return result


def _json(values: dict[str, Any]) -> str:
    return json.dumps(values, separators=(",", ":"))


class LandingGenerator:
    """One pass over the company, writing every stream."""

    def __init__(
        self,
        landing_dir: Path,
        scale: float,
        seed: int,
        rows_per_file: int = ROWS_PER_FILE,
        overwrite: bool = False,
    ):
        self.landing_dir = Path(landing_dir)
        self.scale = scale
        self.seed = seed
        self.writers = {
            name: _RollingWriter(self.landing_dir / name, spec, rows_per_file, overwrite)
            for name, spec in STREAMS.items()
        }
        self.campaigns = campaigns(scale, seed)
        self.counters = {"sgn": 0, "inv": 0, "pay": 0, "evt": 0}

    def next_id(self, prefix: str, width: int = 8) -> str:
        self.counters[prefix] += 1
        return f"{prefix}_{self.counters[prefix]:0{width}d}"

    def run(self) -> dict[str, int]:
        self._write_campaigns()
        for core in iter_cores(self.scale, self.seed):
            self._write_workspace(core)
        for writer in self.writers.values():
            writer.close()
        return {name: writer.rows for name, writer in self.writers.items()}

    @property
    def kept(self) -> list[Path]:
        """Existing files left in place although they differ from what (scale, seed) generates."""
        return [path for writer in self.writers.values() for path in writer.kept]

    def _write_campaigns(self) -> None:
        spend = self.writers["ad_spend"]
        rng = random.Random(f"{self.seed}:ad_spend")
        spend_number = 0
        for campaign in self.campaigns:
            self.writers["campaigns"].csv_row(
                (
                    campaign.campaign_id,
                    campaign.name,
                    campaign.channel,
                    date_of(campaign.started),
                    date_of(campaign.ended),
                    f"{campaign.budget:.2f}",
                )
            )
            days = (campaign.ended - campaign.started) // DAY + 1
            daily = campaign.budget / days
            for day in range(days):
                spend_number += 1
                impressions = int(daily * rng.uniform(40, 120))
                clicks = int(impressions * rng.uniform(0.005, 0.04))
                spend.csv_row(
                    (
                        f"spd_{spend_number:07d}",
                        campaign.campaign_id,
                        date_of(campaign.started + day * DAY),
                        impressions,
                        clicks,
                        f"{daily * rng.uniform(0.7, 1.2):.2f}",
                    )
                )

    def _attribution(self, rng: random.Random, at: int) -> tuple[str, str]:
        running = [c for c in self.campaigns if c.started <= at <= c.ended]
        if running and rng.random() < 0.6:
            campaign = rng.choice(running)
            return UTM_BY_CHANNEL[campaign.channel], campaign.campaign_id
        return rng.choice(ORGANIC_SOURCES), ""

    def _write_workspace(self, core: Core) -> None:
        rng = core.rng
        sub = core.subscription
        self.writers["workspaces"].csv_row(
            (
                core.workspace_id,
                core.name,
                core.domain,
                core.industry,
                core.employee_count,
                core.country,
                core.plan,
                iso(core.created_at),
                iso(core.updated_at),
            )
        )
        self.writers["subscriptions"].csv_row(
            (
                sub.subscription_id,
                core.workspace_id,
                sub.plan,
                sub.seats,
                sub.monthly_amount,
                sub.status,
                iso(sub.started_at),
                iso(sub.canceled_at) if sub.canceled_at else "",
                iso(sub.updated_at),
            )
        )
        users_writer, signups = self.writers["users"], self.writers["signups"]
        for index, user in enumerate(core.users):
            users_writer.csv_row(
                (
                    user.user_id,
                    core.workspace_id,
                    user.email,
                    user.first_name,
                    user.last_name,
                    user.title,
                    user.role,
                    iso(user.created_at),
                )
            )
            if index == 0 or rng.random() < 0.3:
                utm_source, campaign_id = self._attribution(rng, user.created_at)
                signups.json_line(
                    _json(
                        {
                            "signup_id": self.next_id("sgn"),
                            "user_id": user.user_id,
                            "workspace_id": core.workspace_id,
                            "email": user.email,
                            "first_name": user.first_name,
                            "last_name": user.last_name,
                            "company": core.name,
                            "title": user.title,
                            "utm_source": utm_source,
                            "campaign_id": campaign_id,
                            "signed_up_at": iso(user.created_at),
                        }
                    )
                )
        self._write_billing(core)
        self._write_usage(core)

    def _write_billing(self, core: Core) -> None:
        rng, sub = core.rng, core.subscription
        if sub.status == "trialing":
            return
        invoices, payments = self.writers["invoices"], self.writers["payments"]
        last = min(sub.canceled_at or END_EPOCH, END_EPOCH - 1)
        issued_times = list(range(sub.trial_ends_at, last, 30 * DAY))
        for position, issued in enumerate(issued_times):
            invoice_id = self.next_id("inv")
            is_last = position == len(issued_times) - 1
            if sub.status == "past_due" and is_last:
                status = "open"
            elif rng.random() < 0.02:
                status = "void"
            else:
                status = "paid"
            invoices.csv_row(
                (
                    invoice_id,
                    sub.subscription_id,
                    core.workspace_id,
                    sub.monthly_amount,
                    status,
                    iso(issued),
                    iso(issued + 14 * DAY),
                )
            )
            if status == "paid":
                paid_at = min(issued + rng.randint(0, 10 * DAY), END_EPOCH - 1)
                payments.csv_row(
                    (
                        self.next_id("pay"),
                        invoice_id,
                        sub.monthly_amount,
                        rng.choice(PAYMENT_METHODS),
                        iso(paid_at),
                    )
                )

    def _write_usage(self, core: Core) -> None:
        rng, sub = core.rng, core.subscription
        writer = self.writers["usage_events"]
        per_month = EVENTS_PER_USER_MONTH[sub.status]
        active_until = min(sub.canceled_at or END_EPOCH, END_EPOCH) - 1
        choices, weights = EVENT_TYPES, EVENT_WEIGHTS
        ws = core.workspace_id
        days, times = DAY_STRINGS, TIME_OF_DAY
        for user in core.users:
            span = active_until - user.created_at
            if span <= 0:
                continue
            count = int(per_month * span / (30 * DAY) * rng.uniform(0.3, 1.7))
            if count <= 0:
                continue
            kinds = rng.choices(choices, weights=weights, k=count)
            first = self.counters["evt"] + 1
            self.counters["evt"] += count
            head = f'","workspace_id":"{ws}","user_id":"{user.user_id}","event_type":"'
            random_, created = rng.random, user.created_at
            # Inlined iso(): events are most of the rows, so this loop sets the generator's speed.
            writer.json_lines(
                [
                    f'{{"event_id":"evt_{number:09d}{head}{kind}","quantity":'
                    f'{int(random_() * 500) + 1 if kind == "api_call" else 1},"occurred_at":"'
                    f'{days[(at := created + int(random_() * span)) // DAY - FIRST_DAY]}{times[at % DAY]}"}}'
                    for number, kind in zip(range(first, first + count), kinds, strict=True)
                ]
            )


def generate(
    landing_dir: str | Path,
    scale: float = 1.0,
    seed: int = 42,
    rows_per_file: int = ROWS_PER_FILE,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write the landing files of (scale, seed) that are missing; returns the rows per stream generated.

    An existing file is left as it is (the user may have edited it, the pipeline may have loaded it);
    `overwrite=True` replaces the files whose bytes differ from what (scale, seed) generates.
    """
    return LandingGenerator(Path(landing_dir), scale, seed, rows_per_file, overwrite).run()


def iter_existing_rows(folder: Path, spec: StreamSpec) -> Iterator[dict[str, str]]:
    """Rows already in a stream folder (used by `append_rows` to reference existing parents)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"*.{spec.format}")):
        with path.open(newline="", encoding="utf-8") as handle:
            if spec.format == "csv":
                yield from csv.DictReader(handle)
            else:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
