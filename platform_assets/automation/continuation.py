"""Continuing a cycle past a failure: what a failed run held back but does not need, in a second run.

Dagster runs and skips whole steps. One Meltano source is one step (one `meltano run`) and dbt staging is
one step over every raw stream, so when one stream fails (the step yields the streams that loaded, then
fails), staging, every domain and every sync are abandoned in that run, though most of them do not read
the failed stream. `held_back` reads the failed run's events: what it planned, what it materialized, which
steps failed. Every planned asset that is neither materialized nor downstream of a failed one (a failed
step's unmaterialized asset) is the continuation; `continue_run` materializes it in a new run of the same
job (subsettable steps run only the selected assets, e.g. dbt staging without the failed stream's models),
tagged with the failed run. The failed run stays failed, so alerts fire; what stays held back is logged,
each with the failed assets it depends on. A continuation that fails in turn (e.g. a blocking check in a
shared step) is continued the same way while each run leaves less to do.

`python -m platform_assets.automation.continuation --run-id ID` continues one run (default: the latest
failed run of `platform_cycle`); `python3 tasks.py cycle` calls it after a failed cycle.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg

CONTINUES_TAG = "platform/continues_run"
DEFAULT_JOB = "platform_cycle"


@dataclass
class HeldBack:
    run_id: str
    job_name: str
    failed: set[dg.AssetKey] = field(default_factory=set)
    """Planned assets of failed steps that did not materialize: the failures themselves."""
    continuation: set[dg.AssetKey] = field(default_factory=set)
    """Planned, not materialized, and upstream of no failed asset: what a second run may materialize."""
    blocked: dict[dg.AssetKey, set[dg.AssetKey]] = field(default_factory=dict)
    """Planned, not materialized, downstream of failed assets (which ones): stays held back, and why."""

    def describe(self) -> str:
        lines = [f"Run {self.run_id} ({self.job_name}): {len(self.failed)} asset(s) failed."]
        lines += [f"  failed: {name}" for name in _names(self.failed).split(", ") if name]
        lines += [
            f"  skipped: {key.to_user_string()} (depends on failed {_names(why)})"
            for key, why in sorted(self.blocked.items(), key=lambda item: item[0].to_user_string())
        ]
        lines.append(f"  continuing with {len(self.continuation)} asset(s) that need none of them")
        return "\n".join(lines)


def _names(keys: Iterable[dg.AssetKey]) -> str:
    return ", ".join(sorted(key.to_user_string() for key in keys))


def _events(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    records = instance.get_records_for_run(run_id=run_id, of_type=kind, limit=100_000).records
    return [r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event is not None]


def held_back(instance: dg.DagsterInstance, run_id: str, defs: dg.Definitions) -> HeldBack:
    """What the failed run `run_id` did not materialize, split into failed, blocked and continuation."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ValueError(f"no run {run_id} in this Dagster instance")
    planned = {
        event.asset_key: event.step_key
        for event in _events(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        if event.asset_key is not None
    }
    done = {e.asset_key for e in _events(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)}
    failed_steps = {e.step_key for e in _events(instance, run_id, dg.DagsterEventType.STEP_FAILURE)}
    result = HeldBack(run_id, run.job_name)
    result.failed = {key for key, step in planned.items() if step in failed_steps and key not in done}
    # A blocking check that failed stops what is downstream of its asset, materialized or not.
    result.failed |= {
        evaluation.asset_key
        for e in _events(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        if (evaluation := e.event_specific_data)
        and not evaluation.passed
        and evaluation.severity == dg.AssetCheckSeverity.ERROR
        and evaluation.blocking
    }
    graph = defs.resolve_asset_graph()
    for key in planned.keys() - done - result.failed:
        upstream = dg.AssetSelection.assets(key).upstream().resolve(graph)
        if why := upstream & result.failed:
            result.blocked[key] = why
        else:
            result.continuation.add(key)
    return result


def continue_run(
    instance: dg.DagsterInstance, run_id: str, job: dg.ReconstructableJob, defs: dg.Definitions
) -> dg.ExecuteJobResult | None:
    """Materialize the failed run's continuation in a new run of its job (None: nothing to continue)."""
    plan = held_back(instance, run_id, defs)
    print(plan.describe(), flush=True)
    if not plan.continuation:
        return None
    run = instance.get_run_by_id(run_id)
    tags = {**(run.tags if run else {}), CONTINUES_TAG: run_id}
    selection = sorted(plan.continuation, key=lambda key: key.to_user_string())
    return dg.execute_job(job, instance, asset_selection=selection, tags=_user_tags(tags))


def continue_until_done(
    instance: dg.DagsterInstance, run_id: str, job: dg.ReconstructableJob, defs: dg.Definitions
) -> list[dg.ExecuteJobResult]:
    """Continue the failed run, then each continuation that fails in turn (a failure in a shared step
    holds back its other assets again), while each run leaves less to do."""
    results: list[dg.ExecuteJobResult] = []
    remaining: set[dg.AssetKey] | None = None
    while True:
        plan = held_back(instance, run_id, defs)
        if not plan.continuation or plan.continuation == remaining:
            return results
        result = continue_run(instance, run_id, job, defs)
        assert result is not None
        results.append(result)
        if result.success:
            return results
        run_id, remaining = result.run_id, plan.continuation


def _user_tags(tags: dict[str, str]) -> dict[str, str]:
    """The failed run's own tags (e.g. the cycle id), without the ones Dagster sets on each run."""
    return {k: v for k, v in tags.items() if not k.startswith(".dagster/") and not k.startswith("dagster/")}


def _platform_defs() -> dg.Definitions:
    from platform_assets.definitions import defs

    return defs()


def platform_cycle_job() -> dg.JobDefinition:
    """The cycle job, importable by name so Dagster can reconstruct it (dg.reconstructable)."""
    return _platform_defs().resolve_job_def(DEFAULT_JOB)


def latest_failed_run(instance: dg.DagsterInstance, job_name: str) -> str | None:
    records = instance.get_run_records(dg.RunsFilter(job_name=job_name), limit=1)
    if records and records[0].dagster_run.status == dg.DagsterRunStatus.FAILURE:
        return records[0].dagster_run.run_id
    return None


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform_assets.automation.continuation")
    parser.add_argument("--run-id", help=f"the failed run (default: the latest {DEFAULT_JOB} run, if failed)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    instance = dg.DagsterInstance.get()
    run_id = args.run_id or latest_failed_run(instance, DEFAULT_JOB)
    if run_id is None:
        print(f"The latest {DEFAULT_JOB} run did not fail: nothing to continue.")
        return 0
    run = instance.get_run_by_id(run_id)
    if run is None or run.job_name != DEFAULT_JOB:
        print(f"Run {run_id} is not a {DEFAULT_JOB} run of this instance; only those are continued here.")
        return 2
    results = continue_until_done(instance, run_id, dg.reconstructable(platform_cycle_job), _platform_defs())
    return 0 if all(result.success for result in results[-1:]) else 1


if __name__ == "__main__":
    sys.exit(main())
