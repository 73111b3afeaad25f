"""The automation conditions the platform uses, named after what they mean for a data engineer.

OR vs AND over dependencies:
- `eager` (OR): run as soon as ANY dependency updated (`AutomationCondition.any_deps_updated`), unless a
  dependency is missing or in progress. A finance mart runs when its own inputs land, whoever else is late.
- `on_cron` (AND): once per cron tick, after ALL dependencies updated since that tick
  (`AutomationCondition.all_deps_updated_since_cron`). For expensive models or joins that must see every
  input of the cycle.
"""

from __future__ import annotations

import dagster as dg

AC = dg.AutomationCondition


def on_cadence(cron: str, timezone: str = "UTC") -> dg.AutomationCondition:
    """A source's own cadence: every cron tick, whatever its dependencies did (ingestion has none)."""
    return (AC.cron_tick_passed(cron, timezone).since_last_handled() & ~AC.in_progress()).with_label(
        f"on_cadence({cron}, {timezone})"
    )


def eager(blocking_checks: bool = False) -> dg.AutomationCondition:
    """Any dependency updated (OR); with `blocking_checks`, only once every blocking check upstream passed."""
    if not blocking_checks:
        return AC.eager()
    return (AC.eager() & AC.all_deps_blocking_checks_passed()).with_label("eager_after_blocking_checks")


def on_cron(cron: str, timezone: str = "UTC", blocking_checks: bool = False) -> dg.AutomationCondition:
    """Once per cron tick after all dependencies updated since the tick (AND)."""
    condition = AC.on_cron(cron, timezone)
    if not blocking_checks:
        return condition
    return (condition & AC.all_deps_blocking_checks_passed()).with_label(
        f"on_cron_after_blocking_checks({cron}, {timezone})"
    )
