"""A simulated day on the platform's real graph: what automation launches when data changes sparsely.

The platform's real definitions (every source, dbt model and sync) on an ephemeral Dagster instance. Each
hour every source is ingested; two streams land rows a few times a day, the others find nothing new (same
data version). After each cycle Dagster's own `evaluate_automation_conditions` ticks until nothing more is
requested; what it requests is recorded as built (a new data version, its blocking checks passing), without
running it. Counted: materializations, dbt model builds, sync runs (each sync run costs Salesforce Bulk API
or Hightouch API calls). Compared with the same day under plain `AutomationCondition.eager()` (reacting to any
upstream materialization), the previous policy.

.venv/bin/python benchmarks/bench_lineage_day.py
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG  # the tag a data version is stored in
from figures import emit

HOURS = 24
CHANGES = {"signups": {3, 9, 14, 20}, "invoices": {6, 18}}  # stream -> hours it lands rows
AC = dg.AutomationCondition


def plain_eager(defs: dg.Definitions) -> dg.Definitions:
    """The same definitions with Dagster's plain eager wherever the platform reacts to data changes."""

    def swap(spec: dg.AssetSpec) -> dg.AssetSpec:
        label = spec.automation_condition.get_label() if spec.automation_condition else None
        if label == "eager_on_data_change":
            return spec.replace_attributes(automation_condition=AC.eager())
        if label == "eager_after_blocking_checks":
            return spec.replace_attributes(
                automation_condition=AC.eager() & AC.all_deps_blocking_checks_passed()
            )
        return spec

    return defs.map_resolved_asset_specs(func=swap)


def simulate_day(defs: dg.Definitions) -> Counter:
    graph = defs.resolve_asset_graph()
    layer = {key: graph.get(key).tags.get("layer") for key in graph.get_all_asset_keys()}
    sources = sorted(k for k, v in layer.items() if v == "ingestion")
    versions: Counter = Counter()
    counts: Counter = Counter()
    instance = dg.DagsterInstance.ephemeral()
    start = dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)

    def build(key: dg.AssetKey, new_data: bool) -> None:
        versions[key] += int(new_data or versions[key] == 0)
        tags = {DATA_VERSION_TAG: f"{key.to_user_string()}@{versions[key]}"}
        instance.report_runless_asset_event(dg.AssetMaterialization(key, tags=tags))
        for check in sorted(graph.get(key).check_keys):
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(asset_key=key, check_name=check.name, passed=True)
            )

    for key in graph.toposorted_asset_keys:  # the day starts from a platform built once
        if layer[key]:
            build(key, new_data=True)
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=start).cursor
    for hour in range(HOURS):
        now = start + dt.timedelta(hours=hour, minutes=1)
        changed = [k for k in sources if hour in CHANGES.get(k.path[-1], ())]
        lineage = dg.AssetSelection.assets(*changed).downstream().resolve(graph) if changed else set()
        for key in sources:
            build(key, new_data=hour in CHANGES.get(key.path[-1], ()))
        for tick in range(8):
            result = dg.evaluate_automation_conditions(
                defs=defs,
                instance=instance,
                evaluation_time=now + dt.timedelta(seconds=30 * tick),
                cursor=cursor,
            )
            cursor = result.cursor
            requested = [k for k in graph.toposorted_asset_keys if layer[k] and layer[k] != "ingestion"]
            requested = [k for k in requested if result.get_num_requested(k)]
            if not requested:
                break
            for key in requested:
                build(key, new_data=True)
                counts["materializations"] += 1
                counts[f"{layer[key]}"] += 1
                counts[f"sync:{key.path[0]}"] += layer[key] == "activation"
                own_cron = "on_cron" in (graph.get(key).automation_condition.get_label() or "")
                counts["outside"] += key not in lineage and not own_cron
    return counts


def main() -> int:
    warnings.filterwarnings("ignore")  # Dagster's preview/beta warnings, once per evaluation
    logging.getLogger("dagster").setLevel(logging.WARNING)  # and its per-asset evaluation log lines
    with tempfile.TemporaryDirectory(prefix="bench_lineage_day_") as scratch:
        os.environ["PLATFORM_ENV"] = "local"
        os.environ["PLATFORM_LOCAL_DIR"] = str(Path(scratch) / "local")
        from platform_assets import environment
        from platform_assets.definitions import defs as load_defs

        environment.current.cache_clear()
        defs = load_defs()
        data = simulate_day(defs)
        eager = simulate_day(plain_eager(defs))
    rows = [
        ("materializations", "materializations (dbt + syncs)"),
        ("transformation", "dbt model builds"),
        ("sync:salesforce", "Salesforce sync runs (Bulk API calls each)"),
        ("sync:hightouch", "Hightouch sync runs (API calls each)"),
        ("outside", "builds outside the lineage of what changed (on_cron excepted)"),
    ]
    changed = ", ".join(f"{s} at {sorted(h)}" for s, h in CHANGES.items())
    print(f"simulated day: {HOURS} hourly cycles, every source ingested each hour; rows land in {changed}")
    print(f"{'':46} {'data change':>12} {'plain eager':>12}")
    for name, what in rows:
        print(f"{what:46} {data[name]:>12} {eager[name]:>12}")
    for name, what in rows:
        ratio = data[name] / eager[name] if eager[name] and name != "outside" else None
        emit(
            __file__,
            f"simulated day, {what}",
            platform=str(data[name]),
            baseline=f"plain eager {eager[name]}",
            ratio=ratio,
            target="0" if name == "outside" else "only the lineage of what changed",
        )
    return 0 if data["outside"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
