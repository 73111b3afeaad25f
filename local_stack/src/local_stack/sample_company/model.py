"""The sample company's core entities, derived deterministically per workspace.

Every consumer (landing files, application database, Salesforce org) walks workspaces 1..N in order and
draws the same `Core` for each from `random.Random(f"{seed}:ws:{k}")`, so they agree on ids, names,
plans and subscription states without holding the company in memory. Counters (user, subscription ids)
run across workspaces in that order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

# The company's history: every timestamp falls in [START, END).
START_EPOCH = 1735689600  # 2025-01-01T00:00:00Z
END_EPOCH = 1772323200  # 2026-03-01T00:00:00Z
DAY = 86400

PLANS = {"starter": ("29.00", 1, 5), "team": ("49.00", 3, 25), "business": ("99.00", 10, 120)}
PLAN_NAMES = tuple(PLANS)
STATUSES = ("trialing", "active", "canceled", "past_due")
STATUS_WEIGHTS = (20, 55, 15, 10)
INDUSTRIES = (
    "Software",
    "Retail",
    "Healthcare",
    "Financial Services",
    "Manufacturing",
    "Education",
    "Media",
    "Logistics",
    "Real Estate",
    "Hospitality",
)
COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "CA", "AU", "NL", "SE", "ES", "IN", "BR", "JP")
ROLES = ("owner", "admin", "member", "member", "member", "viewer")
TITLES = (
    "CEO",
    "CTO",
    "VP Marketing",
    "Head of Operations",
    "Data Analyst",
    "Product Manager",
    "Software Engineer",
    "Sales Manager",
    "Finance Lead",
    "Customer Success Manager",
    "Designer",
)
FIRST_NAMES = (
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Nils",
    "Olga",
    "Pedro",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uma",
    "Victor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Amir",
    "Bea",
    "Carl",
    "Dana",
    "Emil",
    "Fiona",
)
LAST_NAMES = (
    "Adams",
    "Berg",
    "Chen",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Muller",
    "Nakamura",
    "Okafor",
    "Patel",
    "Quist",
    "Rossi",
    "Silva",
    "Tanaka",
    "Usman",
    "Virtanen",
    "Weber",
    "Xu",
    "Young",
    "Zimmer",
)
NAME_LEFT = (
    "Blue",
    "Bright",
    "North",
    "Swift",
    "Green",
    "Iron",
    "Silver",
    "Clear",
    "Bold",
    "Quiet",
    "Rapid",
    "Solid",
    "Lunar",
    "Polar",
    "Prime",
    "Urban",
    "Vivid",
    "Wild",
    "Amber",
    "Cedar",
)
NAME_RIGHT = (
    "Labs",
    "Works",
    "Systems",
    "Analytics",
    "Logistics",
    "Health",
    "Foods",
    "Studio",
    "Partners",
    "Robotics",
    "Media",
    "Energy",
    "Finance",
    "Retail",
    "Cloud",
    "Goods",
)


# "THH:MM:SSZ" for every second of a day: formatting a timestamp becomes two lookups (runs for every row).
_TIME_OF_DAY = [f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(86400)]


def iso(epoch: int) -> str:
    """ISO-8601 UTC with a Z, e.g. 2026-03-01T12:00:00Z."""
    days, seconds = divmod(epoch, DAY)
    return _date_of_day(days) + _TIME_OF_DAY[seconds]


_DATE_CACHE: dict[int, str] = {}


def _date_of_day(days: int) -> str:
    cached = _DATE_CACHE.get(days)
    if cached is None:
        # Civil-from-days (Howard Hinnant), exact for the proleptic Gregorian calendar.
        z = days + 719468
        era = z // 146097
        doe = z - era * 146097
        yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
        doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
        mp = (5 * doy + 2) // 153
        day = doy - (153 * mp + 2) // 5 + 1
        month = mp + 3 if mp < 10 else mp - 9
        year = yoe + era * 400 + (1 if month <= 2 else 0)
        cached = _DATE_CACHE[days] = f"{year:04d}-{month:02d}-{day:02d}"
    return cached


FIRST_DAY = START_EPOCH // DAY
# Dates of every day of the history (and a year after it), indexed by day - FIRST_DAY, for hot loops.
DAY_STRINGS = [_date_of_day(day) for day in range(FIRST_DAY, END_EPOCH // DAY + 366)]
TIME_OF_DAY = _TIME_OF_DAY


def date_of(epoch: int) -> str:
    return _date_of_day(epoch // DAY)


def workspace_count(scale: float) -> int:
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return max(3, round(300 * scale))


def campaign_count(scale: float) -> int:
    return max(6, round(24 * math.sqrt(scale)))


@dataclass(frozen=True)
class User:
    user_id: str
    number: int
    first_name: str
    last_name: str
    email: str
    title: str
    role: str
    created_at: int


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    plan: str
    seats: int
    monthly_amount: str
    status: str
    started_at: int
    trial_ends_at: int
    canceled_at: int | None
    updated_at: int


@dataclass(frozen=True)
class Core:
    """One workspace with its users and subscription, plus the rng that continues its story."""

    number: int
    workspace_id: str
    name: str
    domain: str
    industry: str
    employee_count: int
    country: str
    created_at: int
    updated_at: int
    users: tuple[User, ...]
    subscription: Subscription
    rng: random.Random

    @property
    def plan(self) -> str:
        return self.subscription.plan

    @property
    def is_paying(self) -> bool:
        return self.subscription.status in ("active", "past_due")


def _subscription(rng: random.Random, number: int, created_at: int) -> Subscription:
    plan = rng.choices(PLAN_NAMES, weights=(50, 35, 15))[0]
    price, min_seats, max_seats = PLANS[plan]
    seats = rng.randint(min_seats, max_seats)
    status = rng.choices(STATUSES, weights=STATUS_WEIGHTS)[0]
    started_at = created_at + rng.randint(0, 3 * 3600)
    trial_ends_at = started_at + 14 * DAY
    if status == "trialing":
        # A trial still running at END started within the last 14 days.
        started_at = max(started_at, END_EPOCH - 13 * DAY + rng.randint(0, 12 * DAY))
        trial_ends_at = started_at + 14 * DAY
    canceled_at = None
    updated_at = started_at
    if status == "canceled":
        canceled_at = rng.randint(min(trial_ends_at, END_EPOCH - DAY), END_EPOCH - 1)
        updated_at = canceled_at
    elif status == "past_due":
        updated_at = rng.randint(max(trial_ends_at, END_EPOCH - 30 * DAY), END_EPOCH - 1)
    elif status == "active":
        updated_at = min(trial_ends_at, END_EPOCH - 1)
    monthly = f"{float(price) * seats:.2f}"
    return Subscription(
        f"sub_{number:06d}", plan, seats, monthly, status, started_at, trial_ends_at, canceled_at, updated_at
    )


def iter_cores(scale: float, seed: int) -> Iterator[Core]:
    """Every workspace of the company in id order, each drawn from its own seeded rng."""
    user_number = 0
    for number in range(1, workspace_count(scale) + 1):
        rng = random.Random(f"{seed}:ws:{number}")
        name = f"{rng.choice(NAME_LEFT)} {rng.choice(NAME_RIGHT)} {number}"
        domain = name.lower().replace(" ", "") + ".example.com"
        created_at = rng.randint(START_EPOCH, END_EPOCH - 20 * DAY)
        subscription = _subscription(rng, number, created_at)
        if subscription.status == "trialing":
            created_at = subscription.started_at - rng.randint(0, 3 * 3600)
        user_total = min(60, 1 + int(rng.expovariate(1 / 4)))
        users = []
        for index in range(user_total):
            user_number += 1
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            joined = created_at if index == 0 else rng.randint(created_at, END_EPOCH - 1)
            users.append(
                User(
                    user_id=f"usr_{user_number:07d}",
                    number=user_number,
                    first_name=first,
                    last_name=last,
                    email=f"{first.lower()}.{last.lower()}{user_number}@{domain}",
                    title=rng.choice(TITLES),
                    role="owner" if index == 0 else rng.choice(ROLES[1:]),
                    created_at=joined,
                )
            )
        yield Core(
            number=number,
            workspace_id=f"ws_{number:06d}",
            name=name,
            domain=domain,
            industry=rng.choice(INDUSTRIES),
            employee_count=int(rng.lognormvariate(3.5, 1.2)) + 1,
            country=rng.choice(COUNTRIES),
            created_at=created_at,
            updated_at=max(created_at, subscription.updated_at),
            users=tuple(users),
            subscription=subscription,
            rng=rng,
        )
