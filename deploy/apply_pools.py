"""Set the per-pool concurrency limits of deploy/pools.yaml on the instance in $DAGSTER_HOME.

    DAGSTER_HOME=/path/to/home python deploy/apply_pools.py local|prod

Dagster stores pool limits in the instance's database (the UI's Concurrency page edits the same rows);
this keeps them declared in the repository. It uses the public `dagster instance concurrency set` command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

POOLS_FILE = Path(__file__).resolve().parent / "pools.yaml"


def pool_limits(environment: str, pools_file: Path = POOLS_FILE) -> dict[str, int]:
    declared = yaml.safe_load(pools_file.read_text()) or {}
    if environment not in declared:
        raise SystemExit(f"{pools_file}: no section {environment!r}; use one of {', '.join(declared)}.")
    limits = declared[environment]
    bad = {pool: limit for pool, limit in limits.items() if not isinstance(limit, int) or limit < 0}
    if bad:
        raise SystemExit(f"{pools_file}: {environment}: limits must be whole numbers >= 0, got {bad}.")
    return limits


def apply(environment: str) -> None:
    if not os.environ.get("DAGSTER_HOME"):
        raise SystemExit("Set DAGSTER_HOME to the instance directory (the one holding dagster.yaml).")
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    for pool, limit in pool_limits(environment).items():
        subprocess.run([dagster, "instance", "concurrency", "set", pool, str(limit)], check=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    apply(sys.argv[1])
