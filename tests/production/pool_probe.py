"""Runs of a tiny asset in concurrency pools, on the instance in $DAGSTER_HOME (a test helper process).

    python pool_probe.py LABEL PARTNER TIMELINE_DIR POOL [POOL ...]

For each POOL in turn (phase i): wait (bounded) until the test writes `go.<i>` in TIMELINE_DIR, then
materialize an asset in that pool. The asset records when its step ran, in `<label>.<i>.json`, and holds
the pool until the partner process's step has started too (at most MAX_HOLD_SECONDS): runs that are
allowed to overlap therefore do, and runs that are not show up as back to back.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import dagster as dg

MAX_HOLD_SECONDS = 6.0
WAIT_SECONDS = 120.0


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def probe_asset(pool: str, label: str, partner: str, timeline: Path, phase: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"pool_probe_{label}_{phase}", pool=pool)
    def _probe() -> None:
        started = time.time()
        (timeline / f"{label}.{phase}.started").touch()
        wait_for(timeline / f"{partner}.{phase}.started", MAX_HOLD_SECONDS)
        time.sleep(0.2)
        (timeline / f"{label}.{phase}.json").write_text(json.dumps({"start": started, "end": time.time()}))

    return _probe


def main(label: str, partner: str, timeline: Path, pools: list[str]) -> None:
    instance = dg.DagsterInstance.get()
    for phase, pool in enumerate(pools):
        if not wait_for(timeline / f"go.{phase}", WAIT_SECONDS):
            raise SystemExit(f"the test never started phase {phase}")
        result = dg.materialize([probe_asset(pool, label, partner, timeline, phase)], instance=instance)
        if not result.success:
            raise SystemExit(f"the run in pool {pool!r} failed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4:])
