"""New rows arriving after the initial drop: `append_rows` adds N rows to one landing stream.

New ids continue after the rows already in the folder (ids are dense per stream); references (workspace,
user, subscription, invoice, campaign) point at rows that exist. Timestamps fall after the generated
history, so appended rows read as new activity.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_stack.sample_company.landing import (
    CHANNELS,
    EVENT_TYPES,
    PAYMENT_METHODS,
    STREAMS,
    StreamSpec,
    iter_existing_rows,
)
from local_stack.sample_company.model import (
    DAY,
    END_EPOCH,
    FIRST_NAMES,
    INDUSTRIES,
    LAST_NAMES,
    PLAN_NAMES,
    PLANS,
    TITLES,
    date_of,
    iso,
)

ID_FORMATS = {
    "workspaces": ("ws", 6),
    "users": ("usr", 7),
    "signups": ("sgn", 8),
    "subscriptions": ("sub", 6),
    "invoices": ("inv", 8),
    "payments": ("pay", 8),
    "usage_events": ("evt", 9),
    "campaigns": ("cmp", 4),
    "ad_spend": ("spd", 7),
}
PARENTS = {
    "users": "workspaces",
    "signups": "users",
    "subscriptions": "workspaces",
    "invoices": "subscriptions",
    "payments": "invoices",
    "usage_events": "users",
    "ad_spend": "campaigns",
}
PARENT_SAMPLE = 5000


def _count_rows(folder: Path, spec: StreamSpec) -> int:
    total = 0
    for path in folder.glob(f"*.{spec.format}"):
        with path.open("rb") as handle:
            lines = sum(1 for line in handle if line.strip())
        total += lines - 1 if spec.format == "csv" and lines else lines
    return total


RowMaker = Callable[[random.Random, str, dict[str, str], int], dict[str, Any]]


def _workspace(rng: random.Random, new_id: str, _: dict[str, str], at: int) -> dict[str, Any]:
    name = f"New Venture {new_id[3:]}"
    return {
        "workspace_id": new_id,
        "name": name,
        "domain": f"newventure{new_id[3:]}.example.com",
        "industry": rng.choice(INDUSTRIES),
        "employee_count": rng.randint(2, 400),
        "country": "US",
        "plan": rng.choice(PLAN_NAMES),
        "created_at": iso(at),
        "updated_at": iso(at),
    }


def _user(rng: random.Random, new_id: str, parent: dict[str, str], at: int) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {
        "user_id": new_id,
        "workspace_id": parent["workspace_id"],
        "email": f"{first.lower()}.{last.lower()}.{new_id}@{parent['domain']}",
        "first_name": first,
        "last_name": last,
        "title": rng.choice(TITLES),
        "role": "member",
        "created_at": iso(at),
    }


def _signup(rng: random.Random, new_id: str, parent: dict[str, str], at: int) -> dict[str, Any]:
    company = parent["email"].split("@", 1)[1].split(".", 1)[0].title()
    return {
        "signup_id": new_id,
        "user_id": parent["user_id"],
        "workspace_id": parent["workspace_id"],
        "email": parent["email"],
        "first_name": parent["first_name"],
        "last_name": parent["last_name"],
        "company": company,
        "title": parent["title"],
        "utm_source": rng.choice(("organic", "referral")),
        "campaign_id": "",
        "signed_up_at": iso(at),
    }


def _subscription(rng: random.Random, new_id: str, parent: dict[str, str], at: int) -> dict[str, Any]:
    plan = rng.choice(PLAN_NAMES)
    price, low, high = PLANS[plan]
    seats = rng.randint(low, high)
    return {
        "subscription_id": new_id,
        "workspace_id": parent["workspace_id"],
        "plan": plan,
        "seats": seats,
        "monthly_amount": f"{float(price) * seats:.2f}",
        "status": "trialing",
        "started_at": iso(at),
        "canceled_at": "",
        "updated_at": iso(at),
    }


def _invoice(rng: random.Random, new_id: str, parent: dict[str, str], at: int) -> dict[str, Any]:
    return {
        "invoice_id": new_id,
        "subscription_id": parent["subscription_id"],
        "workspace_id": parent["workspace_id"],
        "amount": parent["monthly_amount"],
        "status": "open",
        "issued_at": iso(at),
        "due_at": iso(at + 14 * DAY),
    }


def _payment(rng: random.Random, new_id: str, parent: dict[str, str], at: int) -> dict[str, Any]:
    return {
        "payment_id": new_id,
        "invoice_id": parent["invoice_id"],
        "amount": parent["amount"],
        "method": rng.choice(PAYMENT_METHODS),
        "paid_at": iso(at),
    }


def _event(rng: random.Random, new_id: str, parent: dict[str, str], at: int) -> dict[str, Any]:
    kind = rng.choice(EVENT_TYPES)
    return {
        "event_id": new_id,
        "workspace_id": parent["workspace_id"],
        "user_id": parent["user_id"],
        "event_type": kind,
        "quantity": rng.randint(1, 500) if kind == "api_call" else 1,
        "occurred_at": iso(at),
    }


def _campaign(rng: random.Random, new_id: str, _: dict[str, str], at: int) -> dict[str, Any]:
    channel = rng.choice(CHANNELS)
    return {
        "campaign_id": new_id,
        "name": f"{date_of(at)[:7]} {channel} #{new_id[4:]}",
        "channel": channel,
        "started_on": date_of(at),
        "ended_on": date_of(at + 30 * DAY),
        "budget": f"{rng.randint(20, 400) * 100:.2f}",
    }


def _spend(rng: random.Random, new_id: str, parent: dict[str, str], at: int) -> dict[str, Any]:
    impressions = rng.randint(500, 20000)
    return {
        "spend_id": new_id,
        "campaign_id": parent["campaign_id"],
        "spend_date": date_of(at),
        "impressions": impressions,
        "clicks": impressions // rng.randint(20, 200),
        "spend": f"{rng.uniform(10, 900):.2f}",
    }


MAKERS: dict[str, RowMaker] = {
    "workspaces": _workspace,
    "users": _user,
    "signups": _signup,
    "subscriptions": _subscription,
    "invoices": _invoice,
    "payments": _payment,
    "usage_events": _event,
    "campaigns": _campaign,
    "ad_spend": _spend,
}


def _parents(landing_dir: Path, stream: str) -> list[dict[str, str]]:
    parent_stream = PARENTS.get(stream)
    if parent_stream is None:
        return [{}]
    spec = STREAMS[parent_stream]
    rows = list(itertools.islice(iter_existing_rows(landing_dir / parent_stream, spec), PARENT_SAMPLE))
    if parent_stream == "workspaces":
        rows = [row for row in rows if row.get("domain")]
    if not rows:
        raise ValueError(
            f"cannot append to '{stream}': it references '{parent_stream}', which has no rows in "
            f"{landing_dir / parent_stream}; run `python -m local_stack.sample_company` first"
        )
    return rows


def append_rows(landing_dir: str | Path, stream: str, n: int, seed: int, file: str | None = None) -> Path:
    """Append `n` new rows to `stream`: as a new file drop (default) or onto `file` in the stream's folder.

    Returns the file written. A new drop is written under a dot-name and renamed when complete, so the tap
    never reads it half-written; an existing file gets its rows appended in place.
    """
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; the landing streams are {', '.join(STREAMS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    landing_dir = Path(landing_dir)
    spec = STREAMS[stream]
    folder = landing_dir / stream
    folder.mkdir(parents=True, exist_ok=True)
    prefix, width = ID_FORMATS[stream]
    first_number = _count_rows(folder, spec) + 1
    rng = random.Random(f"{seed}:append:{stream}:{first_number}")
    parents = _parents(landing_dir, stream)
    rows = [
        MAKERS[stream](
            rng,
            f"{prefix}_{number:0{width}d}",
            rng.choice(parents),
            END_EPOCH + (number - first_number) * 60 + rng.randint(0, 59),
        )
        for number in range(first_number, first_number + n)
    ]
    if file is None:
        target = folder / f"append-{seed}-{first_number:09d}.{spec.format}"
        temp = folder / f".{target.name}.tmp"
        _write(temp, spec, rows, header=True)
        os.replace(temp, target)
        return target
    target = folder / file
    if target.suffix != f".{spec.format}":
        raise ValueError(f"stream '{stream}' takes .{spec.format} files, not {file!r}")
    _write(target, spec, rows, header=not target.exists() or target.stat().st_size == 0)
    return target


def _write(path: Path, spec: StreamSpec, rows: list[dict[str, Any]], header: bool) -> None:
    with path.open("a", newline="", encoding="utf-8") as handle:
        if spec.format == "csv":
            writer = csv.DictWriter(handle, fieldnames=spec.columns, lineterminator="\n")
            if header:
                writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                handle.write(json.dumps(row, separators=(",", ":")) + "\n")
