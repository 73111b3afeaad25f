"""The Meltano stream asset vs plain `meltano run` on the same 100k-row landing stream (target <= 1.1x).

Both load `usage_events` (100,000 JSONL rows) from scratch into a fresh DuckDB file with fresh Meltano
state: the baseline is `meltano run tap-landing <landing's local loader>` (target-duckdb-bulk, bulk mode)
with the stream selected and the settings of sources.yaml passed through the same setting env vars; the
asset is `raw/landing/usage_events` materialized through Dagster (log streaming, record counts, warehouse
watermark and reconciliation counts included). Rounds alternate to share noise.

    .venv/bin/python benchmarks/bench_meltano.py [--rows 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from figures import emit  # noqa: E402

from local_stack.sample_company import append_rows, generate  # noqa: E402
from platform_assets import environment  # noqa: E402
from platform_assets.components.meltano import (  # noqa: E402
    DEFAULT_LOADERS,
    ingestion_definitions,
    load_sources,
)
from platform_assets.integrations.meltano.runner import build_env  # noqa: E402
from platform_assets.resources import warehouse_resource  # noqa: E402

SOURCES = ROOT / "platform_assets" / "defs" / "ingestion" / "sources.yaml"
KEY = dg.AssetKey(["raw", "landing", "usage_events"])


def fresh_env(base: Path, landing: Path, name: str) -> environment.PlatformEnvironment:
    local = base / name
    shutil.rmtree(local, ignore_errors=True)
    (local / "dagster_home").mkdir(parents=True)
    os.symlink(landing, local / "landing")
    os.environ["PLATFORM_LOCAL_DIR"] = str(local)
    os.environ["DAGSTER_HOME"] = str(local / "dagster_home")
    environment.current.cache_clear()
    return environment.current()


def plain_meltano(env: environment.PlatformEnvironment) -> float:
    sources = load_sources(SOURCES, environment.MELTANO_PROJECT_DIR, DEFAULT_LOADERS, env)
    [landing] = [source for source in sources if source.name == "landing"]
    process_env = build_env(
        env,
        environment.MELTANO_PROJECT_DIR,
        landing.extractor,
        landing.loader,
        "landing",
        ["usage_events"],
        landing.settings,
        landing.loader_settings,
    )
    started = time.perf_counter()
    subprocess.run(
        ["meltano", "--environment=local", "--log-format=json", "run", landing.extractor, landing.loader],
        cwd=environment.MELTANO_PROJECT_DIR,
        env=process_env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def dagster_asset() -> tuple[float, int]:
    defs = ingestion_definitions(SOURCES, environment.MELTANO_PROJECT_DIR)
    started = time.perf_counter()
    result = dg.materialize(
        list(defs.assets or []),
        selection=[KEY],
        resources={**(defs.resources or {}), "warehouse": warehouse_resource()},
    )
    elapsed = time.perf_counter() - started
    [event] = result.get_asset_materialization_events()
    return elapsed, int(event.materialization.metadata["rows_landed"].value)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench_meltano_"))
    landing = base / "landing"
    generate(landing, scale=0.01, seed=1)  # the parents (users) the appended events reference
    shutil.rmtree(landing / "usage_events")
    append_rows(landing, "usage_events", args.rows, seed=1)
    plain, asset = [], []
    for round_number in range(args.rounds):
        plain.append(plain_meltano(fresh_env(base, landing, f"plain{round_number}")))
        fresh_env(base, landing, f"asset{round_number}")
        elapsed, landed = dagster_asset()
        assert landed == args.rows, f"asset landed {landed} rows, expected {args.rows}"
        asset.append(elapsed)
    best_plain, best_asset = min(plain), min(asset)
    print(f"rows: {args.rows:,} (usage_events, JSONL) x {args.rounds} rounds, best of each")
    print(f"plain `meltano run`: {best_plain:.1f}s  (all: {', '.join(f'{t:.1f}' for t in plain)})")
    print(f"Dagster asset:       {best_asset:.1f}s  (all: {', '.join(f'{t:.1f}' for t in asset)})")
    print(f"ratio asset/plain:   {best_asset / best_plain:.2f}x  (target <= 1.10x)")
    emit(
        __file__,
        f"Meltano stream asset vs plain `meltano run`, {args.rows:,} rows (best of {args.rounds})",
        platform=f"{best_asset:.1f} s",
        baseline=f"{best_plain:.1f} s",
        ratio=best_asset / best_plain,
        target="≤ 1.10x",
    )
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
