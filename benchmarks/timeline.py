"""Where an end-to-end latency went: the runs that led to an asset's materialization, phase by phase.

Read from the instance after the fact (nothing in the platform is instrumented for the benchmark): the tick
that requested each run (`dagster/tick`), the run's queue and launch events, its steps, and the
materialization itself. Each phase is the gap between two recorded moments, so the phases add up to the
measured latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.tags import (
    TICK_ID_TAG,
)  # public constant not re-exported; the tick a run came from

_LAUNCH_EVENTS = {
    "PIPELINE_DEQUEUED": "dequeued",
    "PIPELINE_STARTING": "starting",
    "PIPELINE_START": "started",
}


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float


def _tick_window(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[float, float] | None:
    tick_id = run.tags.get(TICK_ID_TAG)
    if not tick_id:
        return None
    try:
        tick = instance.schedule_storage.get_tick(int(tick_id))  # type: ignore[union-attr]
    except Exception:  # a purged tick: the phase is then counted as waiting
        return None
    return tick.timestamp, tick.tick_data.end_timestamp or tick.timestamp


def run_phases(
    instance: dg.DagsterInstance, run_id: str, since: float, until: float | None = None
) -> tuple[list[Phase], float]:
    """The phases of one run from `since` (the previous moment) to its end or `until` (a moment within it);
    returns them and the moment it ends at."""
    record = instance.get_run_record_by_id(run_id)
    assert record is not None, run_id
    run = record.dagster_run
    trigger = run.tags.get("dagster/sensor_name") or run.tags.get("dagster/schedule_name") or "launch"
    phases: list[Phase] = []
    moment = since

    def add(name: str, at: float | None) -> None:
        nonlocal moment
        if at is None or at < moment - 0.001:
            return
        phases.append(Phase(name, at - moment))
        moment = at

    window = _tick_window(instance, run)
    if window:
        add(f"waiting for the {trigger} tick", window[0])
        add(f"{trigger} tick (evaluation until the run was created)", record.create_timestamp.timestamp())
    else:
        add(f"until {trigger} created the run", record.create_timestamp.timestamp())
    seen: dict[str, float] = {}
    steps: list[tuple[str, float, float]] = []
    open_steps: dict[str, float] = {}
    end = None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind in _LAUNCH_EVENTS and _LAUNCH_EVENTS[kind] not in seen:
            seen[_LAUNCH_EVENTS[kind]] = entry.timestamp
        elif kind == "STEP_START":
            open_steps[event.step_key or "?"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in open_steps:
            steps.append((event.step_key or "?", open_steps.pop(event.step_key or "?"), entry.timestamp))
        elif kind in ("PIPELINE_SUCCESS", "PIPELINE_FAILURE"):
            end = entry.timestamp
    # Dagster records no dequeue event for a run the coordinator launches at once: then queue and launch
    # are one phase.
    add("run queue (until the coordinator dequeued it)", seen.get("dequeued"))
    add("queue and launch (until the run worker process started)", seen.get("starting"))
    add("run worker start-up (imports, definitions load)", seen.get("started"))
    steps += [(step, started, until or started) for step, started in open_steps.items()]  # still running
    for step, started, ended in sorted(steps, key=lambda step: step[1]):
        if until is not None and started > until:
            break
        add("run set-up before the step", started)
        add(f"step {step}", ended if until is None else min(ended, until))
    add("until the run ended", end if until is None else until)
    return phases, moment


def chain_phases(
    instance: dg.DagsterInstance, run_ids: Sequence[str], started: float, ended: float
) -> list[Phase]:
    """Phases over runs that follow one another (each requested after the previous one's change), from
    `started` to `ended` (a moment inside the last run, e.g. its materialization)."""
    phases: list[Phase] = []
    moment = started
    for index, run_id in enumerate(run_ids):
        last = index == len(run_ids) - 1
        more, moment = run_phases(instance, run_id, moment, until=ended if last else None)
        phases += more
    if ended > moment + 0.001:
        phases.append(Phase("unaccounted", ended - moment))
    return phases


def format_phases(phases: Sequence[Phase]) -> str:
    width = max((len(p.name) for p in phases), default=0)
    return "\n".join(f"    {p.name:<{width}}  {p.seconds:6.1f}s" for p in phases)
