"""Bulk landing load: the stream asset vs DuckDB loading the same files directly, and vs record mode.

A landing stream of its own (9 typed columns: text, decimal, integer, number, boolean, date, date-time) with
`--rows` rows (default 1,000,000, in files of 250,000), once as CSV and once as JSONL. Per format, in the
same run, each in a fresh worker process with a fresh warehouse and fresh Meltano state:

- asset: the stream asset materialized through Dagster on the platform's bulk path (tap-landing validates
  every line and writes batch files, target-duckdb-bulk loads them with DuckDB's `read_json`, upserting on
  `_source_file`, `_source_line`; the reconciliation check included);
- DuckDB direct: `CREATE TABLE AS SELECT * FROM read_csv/read_json(<the same files>)` (no validation,
  no lineage columns, no upsert, no bookmarks);
- record mode: the same asset with tap-landing sending one RECORD message per row into target-duckdb
  0.8.0 (the path before bulk loading), on the first `--record-rows` rows (default 100,000: at its speed the
  full stream would take minutes), compared in rows/s.

Peak RSS is the largest process of the asset's load (meltano, the tap, the loader; getrusage of the
worker's children). Targets (issue #15): asset within 3x of DuckDB direct, at least 10x record mode's rows/s,
peak RSS at most 500 MB.

    .venv/bin/python benchmarks/bench_landing_load.py [--rows 1000000] [--record-rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from figures import emit  # noqa: E402

from local_stack.meltano_scratch import landing_project  # noqa: E402

SOURCE = "bench"
FILE_ROWS = 250_000
COLUMNS = {
    "id": "string",
    "account": "string",
    "kind": "string",
    "amount": "decimal",
    "quantity": "integer",
    "score": "number",
    "ok": "boolean",
    "day": "date",
    "at": "date-time",
}


def row(i: int) -> dict:
    day = f"2026-05-{i % 28 + 1:02d}"
    return {
        "id": f"ev{i:09d}",
        "account": f"acct_{i % 5000:05d}",
        "kind": ("click", "view", "buy")[i % 3],
        "amount": f"{i % 1000}.{i % 100:02d}",
        "quantity": i % 17,
        "score": round((i % 997) / 7, 4),
        "ok": i % 2 == 0,
        "day": day,
        "at": f"{day}T{i % 24:02d}:{i % 60:02d}:00",
    }


def write_stream(folder: Path, fmt: str, rows: int) -> None:
    folder.mkdir(parents=True)
    for first in range(0, rows, FILE_ROWS):
        with (folder / f"part-{first // FILE_ROWS:05d}.{fmt}").open("w") as out:
            if fmt == "csv":
                out.write(",".join(COLUMNS) + "\n")
            for i in range(first, min(rows, first + FILE_ROWS)):
                values = row(i)
                if fmt == "csv":
                    values["ok"] = str(values["ok"]).lower()
                    out.write(",".join(str(v) for v in values.values()) + "\n")
                else:
                    out.write(json.dumps(values) + "\n")


def meltano_project(base: Path) -> Path:
    """The platform's meltano.yml with tap-landing's streams replaced by the benchmark's, plugins linked."""
    streams = [{"name": fmt, "format": fmt, "columns": COLUMNS} for fmt in ("csv", "jsonl")]
    return landing_project(base / "meltano", streams)


def sources_file(base: Path, bulk: bool) -> Path:
    source: dict = {
        "extractor": "tap-landing",
        "description": "Benchmark stream.",
        "owners": ["team:data-platform"],
        "settings": {"root": "{landing_dir}"},
        "streams": {"csv": {"description": "CSV."}, "jsonl": {"description": "JSONL."}},
    }
    if bulk:  # as the platform's sources.yaml declares landing
        source["loader"] = "target-duckdb-bulk"
        source["settings"]["batch_dir"] = "{local_dir}/meltano/batches"
        source["settings"]["batch_format"] = "parquet"
    path = base / ("sources-bulk.yaml" if bulk else "sources-record.yaml")
    settings = {
        "target-duckdb": {"filepath": "{duckdb_path}"},
        "target-duckdb-bulk": {"filepath": "{duckdb_path}"},
    }
    path.write_text(
        yaml.safe_dump({"loader_settings": settings, "sources": {SOURCE: source}}, sort_keys=False)
    )
    return path


# -- workers: one measurement each, in a process of its own ------------------------------------------


def asset_worker(project_dir: Path, sources: Path, stream: str) -> dict:
    import dagster as dg

    from platform_assets.components.meltano import ingestion_definitions
    from platform_assets.resources import warehouse_resource

    defs = ingestion_definitions(sources, project_dir)
    started = time.perf_counter()
    result = dg.materialize(
        list(defs.assets or []),
        selection=[dg.AssetKey(["raw", SOURCE, stream])],
        resources={**(defs.resources or {}), "warehouse": warehouse_resource()},
    )
    seconds = time.perf_counter() - started
    [event] = result.get_asset_materialization_events()
    [check] = result.get_asset_check_evaluations()
    metadata = event.materialization.metadata
    return {
        "seconds": seconds,
        "meltano_seconds": metadata["duration_seconds"].value,
        "rows": metadata["rows_landed"].value,
        "check_passed": check.passed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def duckdb_worker(folder: Path, fmt: str) -> dict:
    import duckdb

    connection = duckdb.connect(str(folder.parent / "direct.duckdb"))
    reader = "read_csv" if fmt == "csv" else "read_json"
    started = time.perf_counter()
    connection.execute(f"CREATE TABLE t AS SELECT * FROM {reader}('{folder}/*.{fmt}')")
    rows = connection.execute("SELECT count(*) FROM t").fetchone()[0]
    connection.close()
    return {
        "seconds": time.perf_counter() - started,
        "rows": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(*args: str, local: Path | None = None) -> dict:
    """Run one worker in a fresh process; its figures."""
    env = dict(os.environ)
    if local is not None:
        (local / "dagster_home").mkdir(parents=True)
        env |= {"PLATFORM_LOCAL_DIR": str(local), "DAGSTER_HOME": str(local / "dagster_home")}
        env.pop("PLATFORM_DUCKDB_PATH", None)
        env.pop("PLATFORM_LANDING_DIR", None)
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", *args], env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def local_dir(base: Path, name: str, landing: Path) -> Path:
    local = base / name
    local.mkdir()
    (local / "landing").symlink_to(landing)
    return local


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--record-rows", type=int, default=100_000)
    parser.add_argument("--worker", nargs="+")
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "asset":
            print(json.dumps(asset_worker(Path(rest[0]), Path(rest[1]), rest[2])))
        else:
            print(json.dumps(duckdb_worker(Path(rest[0]), rest[1])))
        return 0

    base = Path(tempfile.mkdtemp(prefix="bench_landing_load_"))
    project_dir = meltano_project(base)
    bulk, record = sources_file(base, bulk=True), sources_file(base, bulk=False)
    print(f"{args.rows:,} rows per format ({FILE_ROWS:,} per file), record mode on {args.record_rows:,} rows")
    # The fixed cost of a run (Dagster, the meltano CLI, the plugins' start-up): a stream of one row.
    write_stream(base / "one" / "csv", "csv", 1)
    startup = measure(
        "asset", str(project_dir), str(record), "csv", local=local_dir(base, "one-run", base / "one")
    )
    print(f"start-up of one asset run (1 row, record mode): {startup['seconds']:.1f} s")
    for fmt in ("csv", "jsonl"):
        landing, sample = base / f"landing-{fmt}", base / f"sample-{fmt}"
        write_stream(landing / fmt, fmt, args.rows)
        write_stream(sample / fmt, fmt, args.record_rows)
        direct = measure("duckdb", str(landing / fmt), fmt)
        asset = measure(
            "asset", str(project_dir), str(bulk), fmt, local=local_dir(base, f"bulk-{fmt}", landing)
        )
        old = measure(
            "asset", str(project_dir), str(record), fmt, local=local_dir(base, f"rec-{fmt}", sample)
        )
        assert (direct["rows"], asset["rows"], old["rows"]) == (args.rows, args.rows, args.record_rows)
        assert asset["check_passed"] and old["check_passed"]
        rate, direct_rate, old_rate = (
            args.rows / asset["seconds"],
            args.rows / direct["seconds"],
            args.record_rows / old["seconds"],
        )
        print(f"\n{fmt.upper()}")
        print(f"  DuckDB direct:   {direct['seconds']:6.1f} s  {direct_rate:>10,.0f} rows/s")
        print(
            f"  asset (bulk):    {asset['seconds']:6.1f} s  {rate:>10,.0f} rows/s  "
            f"(meltano run {asset['meltano_seconds']:.1f} s)  peak RSS {asset['peak_rss_mb']:.0f} MB"
        )
        print(
            f"  record mode:     {old['seconds']:6.1f} s  {old_rate:>10,.0f} rows/s  "
            f"({args.record_rows:,} rows)  peak RSS {old['peak_rss_mb']:.0f} MB"
        )
        marginal = [
            rows / max(run["seconds"] - startup["seconds"], 1e-9)
            for rows, run in ((args.rows, asset), (args.record_rows, old))
        ]
        print(
            f"  without the start-up: asset {marginal[0]:,.0f} rows/s, record mode {marginal[1]:,.0f} rows/s "
            f"({marginal[0] / marginal[1]:.1f}x)"
        )
        print(f"  asset / DuckDB direct: {asset['seconds'] / direct['seconds']:.2f}x (target <= 3x)")
        print(f"  asset / record mode:   {rate / old_rate:.1f}x rows/s (target >= 10x)")
        emit(
            __file__,
            f"Landing stream asset (bulk), {args.rows:,} {fmt.upper()} rows vs DuckDB loading the same files",
            platform=f"{asset['seconds']:.1f} s ({rate:,.0f} rows/s), peak RSS {asset['peak_rss_mb']:.0f} MB",
            baseline=f"DuckDB `{'read_csv' if fmt == 'csv' else 'read_json'}` {direct['seconds']:.1f} s",
            ratio=asset["seconds"] / direct["seconds"],
            target="≤ 3x; RSS ≤ 500 MB",
        )
        emit(
            __file__,
            f"Landing stream asset (bulk) vs record mode, {fmt.upper()}, rows/s (speed-up)",
            platform=f"{rate:,.0f} rows/s",
            baseline=f"record mode {old_rate:,.0f} rows/s ({args.record_rows:,} rows)",
            ratio=rate / old_rate,
            target="≥ 10x",
        )
        shutil.rmtree(landing)
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
