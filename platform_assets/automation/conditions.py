"""The automation conditions the platform uses, named after what they mean for a data engineer.

Work runs when data changed, not when something ran: every trigger below looks at the inputs' *data
versions* (`AutomationCondition.data_version_changed`), never at their mere materializations. A stream whose
run landed no new rows keeps its data version, so nothing downstream of it is requested; a dbt model's data
version is Dagster's provenance version (its code version + its inputs' data versions), so it changes exactly
when the model was rebuilt from changed inputs or changed SQL. See docs/automation.md, "What counts as a
change".

OR vs AND over dependencies:
- `eager` (OR): run as soon as ANY input's data changed (or the asset's own code version changed), unless an
  input is missing or in progress. A finance mart runs when its own inputs change, whoever else is late.
- `on_cron` (AND): once per cron tick, after ALL dependencies updated since that tick
  (`AutomationCondition.all_deps_updated_since_cron`). An input whose data did not change is confirmed
  current by the `lineage_unchanged` sensor (automation/unchanged.py), which counts as an update here.
"""

from __future__ import annotations

import dagster as dg

from platform_assets.automation.settings import LAYER_TAG

AC = dg.AutomationCondition
SOURCE_LAYER = "ingestion"


def on_cadence(cron: str, timezone: str = "UTC") -> dg.AutomationCondition:
    """A source's own cadence: every cron tick, whatever its dependencies did (ingestion has none)."""
    return (AC.cron_tick_passed(cron, timezone).since_last_handled() & ~AC.in_progress()).with_label(
        f"on_cadence({cron}, {timezone})"
    )


def any_input_data_changed() -> dg.AutomationCondition:
    """An input's data version changed since the previous tick, or an input other than a source will be
    built in this same tick (then its data version changes: it is rebuilt from changed data or code).

    A change made by a run that also built this asset is ignored (`executed_with_root_target`): that run
    already built it from the new data. Sources are left out of `will_be_requested`: a source started on
    its cadence may well find nothing new.
    """
    changed = (AC.data_version_changed() & ~AC.executed_with_root_target()).with_label(
        "data_version_changed_without_root"
    )
    sources = dg.AssetSelection.tag(LAYER_TAG, SOURCE_LAYER)
    built_now = AC.any_deps_match(AC.will_be_requested()).ignore(sources)
    return (AC.any_deps_match(changed) | built_now).with_label("any_input_data_changed")


def eager(
    blocking_checks: bool = False, retry_failed_checks: tuple[str, str] | None = None
) -> dg.AutomationCondition:
    """Any input's data changed (OR), or the asset's code version changed; with `blocking_checks`, only once
    every blocking check upstream passed. `retry_failed_checks=(cron, timezone)`: also once per cron tick
    while one of the asset's own checks failed (a sync's records the destination rejected wait for it)."""
    trigger = AC.newly_missing() | any_input_data_changed() | AC.code_version_changed()
    if retry_failed_checks is not None:
        cron, timezone = retry_failed_checks
        retry = AC.cron_tick_passed(cron, timezone) & AC.any_checks_match(AC.check_failed())
        trigger = trigger | retry.with_label("failed_checks_retried_on_cron")
    condition = (
        AC.in_latest_time_window()
        & trigger.since_last_handled()
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("eager_on_data_change")
    if not blocking_checks:
        return condition
    return (condition & AC.all_deps_blocking_checks_passed()).with_label("eager_after_blocking_checks")


def on_cron(cron: str, timezone: str = "UTC", blocking_checks: bool = False) -> dg.AutomationCondition:
    """Once per cron tick after all dependencies updated since the tick (AND)."""
    condition = AC.on_cron(cron, timezone)
    if not blocking_checks:
        return condition
    return (condition & AC.all_deps_blocking_checks_passed()).with_label(
        f"on_cron_after_blocking_checks({cron}, {timezone})"
    )
