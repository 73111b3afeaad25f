"""Bulk mode: tap-landing writes batch files (Singer BATCH messages), target-duckdb-bulk loads them.

Tap-level tests run the installed tap and read its messages: batch boundaries inside a file and across
files, the STATE after each BATCH, lineage columns, the record counts reconciliation uses, errors with
file and line. The end-to-end test runs the real meltano with both plugins on streams the sample does not
have (a CSV ledger, a JSONL ping stream), counting raw rows through a failure, the fix and a re-send.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from ingestion.hostile import SOURCE, hostile_project, raw_lines, run_tap_landing
from platform_assets.components.meltano import ingestion_definitions
from platform_assets.resources import warehouse_resource

pytestmark = pytest.mark.integration

LEDGER = {"format": "csv", "columns": {"entry": "string", "cents": "integer", "booked_at": "date-time"}}
PINGS = {"format": "jsonl", "columns": {"host": "string", "ok": "boolean"}}
HEADER = "entry,cents,booked_at\n"


def ledger_rows(first: int, last: int) -> str:
    return "".join(f"l{i},{i * 100},2026-05-0{i % 9 + 1}T08:00:00\n" for i in range(first, last + 1))


def run_tap(
    project: Path, tmp_path: Path, state: dict | None = None, **settings: Any
) -> subprocess.CompletedProcess:
    """tap-landing on the ledger stream; `settings` override the config (`stream` keys go to the stream)."""
    config = {
        "root": str(tmp_path / "landing"),
        "batch_dir": str(tmp_path / "batches"),
        "batch_size_rows": 2,
        "streams": [{"name": "ledger", **LEDGER, **settings.pop("stream", {})}],
        **settings,
    }
    return run_tap_landing(project, tmp_path, config, state)


def batch_rows(message: dict) -> list[dict]:
    """The rows of a BATCH message's file (gzipped JSON Lines or Parquet)."""
    [url] = message["manifest"]
    if message["encoding"] == {"format": "parquet", "compression": "snappy"}:
        return pq.read_table(urlparse(url).path).to_pylist()
    assert message["encoding"] == {"format": "jsonl", "compression": "gzip"}
    with gzip.open(urlparse(url).path, "rt") as handle:
        return [json.loads(line) for line in handle]


def batches_and_bookmarks(output: str) -> list[tuple[list[tuple[str, int]], dict[str, int]]]:
    """Per BATCH message: (_source_file, _source_line) of its rows, and the bookmarks of the next STATE."""
    result: list[tuple[list[tuple[str, int]], dict[str, int]]] = []
    for message in map(json.loads, output.splitlines()):
        if message["type"] == "BATCH":
            rows = batch_rows(message)
            result.append(([(r["_source_file"], r["_source_line"]) for r in rows], {}))
        elif message["type"] == "STATE" and result and not result[-1][1]:
            partitions = message["value"]["bookmarks"]["ledger"]["partitions"]
            result[-1][1].update({p["context"]["file"]: p["replication_key_value"] for p in partitions})
    return result


def extracted(stderr: str) -> int:
    counts = re.findall(r'METRIC: (\{"type":"counter","metric":"record_count".*\})', stderr)
    return sum(json.loads(c)["value"] for c in counts)


def test_batches_split_inside_and_across_files_and_each_state_covers_its_batch(meltano_plugins, tmp_path):
    (tmp_path / "landing/ledger").mkdir(parents=True)
    (tmp_path / "landing/ledger/a.csv").write_text(HEADER + ledger_rows(2, 6))
    (tmp_path / "landing/ledger/b.csv").write_text(HEADER + ledger_rows(2, 2))
    completed = run_tap(meltano_plugins, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "RECORD" not in {json.loads(line)["type"] for line in completed.stdout.splitlines()}
    a, b = "ledger/a.csv", "ledger/b.csv"
    assert batches_and_bookmarks(completed.stdout) == [
        ([(a, 2), (a, 3)], {a: 3}),  # a batch boundary in the middle of a.csv
        ([(a, 4), (a, 5)], {a: 5}),
        ([(a, 6), (b, 2)], {a: 6, b: 2}),  # one batch spanning the end of a.csv and b.csv
    ]
    assert extracted(completed.stderr) == 6

    # Resuming from the STATE after the second batch (e.g. a run killed after it): only the rest is sent.
    state = next(
        m["value"]
        for m in map(json.loads, completed.stdout.splitlines())
        if m["type"] == "STATE"
        and m["value"]["bookmarks"]["ledger"]["partitions"][0]["replication_key_value"] == 5
    )
    resumed = run_tap(meltano_plugins, tmp_path, state)
    assert resumed.returncode == 0, resumed.stderr
    assert [rows for rows, _ in batches_and_bookmarks(resumed.stdout)] == [[(a, 6), (b, 2)]]


def test_bad_line_fails_the_stream_naming_file_and_line_after_the_batches_before_it(
    meltano_plugins, tmp_path
):
    path = tmp_path / "landing/ledger/a.csv"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + ledger_rows(2, 4) + "l5,lots,\n" + ledger_rows(6, 6))
    completed = run_tap(meltano_plugins, tmp_path)
    assert completed.returncode != 0
    assert f"{path} line 5: column 'cents': 'lots' is not a valid integer" in completed.stderr
    a = "ledger/a.csv"
    assert batches_and_bookmarks(completed.stdout) == [([(a, 2), (a, 3)], {a: 3}), ([(a, 4)], {a: 4})]
    assert extracted(completed.stderr) == 3
    final_state = [json.loads(line) for line in completed.stdout.splitlines()][-1]
    assert final_state["value"]["bookmarks"]["ledger"]["partitions"][0]["replication_key_value"] == 4


def test_parquet_batches_hold_fast_chunks_then_line_read_records_in_line_order(meltano_plugins, tmp_path):
    """A file whose first chunks read fast and whose rest is read line by line (a quoted field), in Parquet
    batches that straddle chunks and the switch: every line once, in order, typed, bookmarks per batch."""
    path = tmp_path / "landing/ledger/a.csv"
    path.parent.mkdir(parents=True)
    rows = ledger_rows(2, 1999) + '"l2000",200000,2026-05-01T08:00:00\n' + ledger_rows(2001, 3001)
    path.write_text(HEADER + rows)
    settings = {"batch_size_rows": 700, "batch_format": "parquet", "stream": {"max_record_bytes": 65536}}
    completed = run_tap(meltano_plugins, tmp_path, **settings)
    assert completed.returncode == 0, completed.stderr
    assert "ledger/a.csv: read line by line after line" in completed.stderr  # the fast reader stopped
    a = "ledger/a.csv"
    batches = batches_and_bookmarks(completed.stdout)
    assert [line for rows, _ in batches for _, line in rows] == list(range(2, 3002))
    assert all(len(rows) <= 700 for rows, _ in batches[:-1]) and len(batches) == 5
    assert [bookmarks for _, bookmarks in batches] == [{a: rows[-1][1]} for rows, _ in batches]
    messages = [json.loads(line) for line in completed.stdout.splitlines()]
    records = [row for message in messages if message["type"] == "BATCH" for row in batch_rows(message)]
    assert records[1998] == {
        "entry": "l2000",
        "cents": 200000,
        "booked_at": "2026-05-01T08:00:00",
        "_source_file": a,
        "_source_line": 2000,
        "_sdc_batched_at": records[1998]["_sdc_batched_at"],
    }
    assert records[0]["cents"] == 200 and records[-1]["booked_at"] == "2026-05-05T08:00:00"
    assert extracted(completed.stderr) == 3000

    # Resuming after the second batch (inside the fast part) sends exactly the rest.
    second = [m["value"] for m in messages if m["type"] == "STATE"][1]
    resumed = run_tap(meltano_plugins, tmp_path, second, **settings)
    assert resumed.returncode == 0, resumed.stderr
    lines = [line for rows, _ in batches_and_bookmarks(resumed.stdout) for _, line in rows]
    assert lines == list(range(1402, 3002))


def materialize(
    project_dir: Path, sources_file: Path, full_refresh: bool = False
) -> dg.ExecuteInProcessResult:
    defs = ingestion_definitions(sources_file, project_dir)
    run_config = {"ops": {f"meltano_{SOURCE}": {"config": {"full_refresh": full_refresh}}}}
    return dg.materialize(
        list(defs.assets or []),
        resources={**(defs.resources or {}), "warehouse": warehouse_resource()},
        run_config=run_config,
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, tuple[bool, int, int]]:
    return {
        e.asset_key.path[-1]: (e.passed, e.metadata["rows_extracted"].value, e.metadata["rows_landed"].value)
        for e in result.get_asset_check_evaluations()
    }


def test_bulk_load_lands_each_line_once_through_a_failure_its_fix_and_a_resend(
    meltano_plugins, local_platform, tmp_path
):
    project_dir, sources_file = hostile_project(
        tmp_path / "project", {"ledger": LEDGER, "pings": PINGS}, bulk={"batch_size_rows": "2"}
    )
    ledger = local_platform.landing_dir / "ledger" / "2026-05.csv"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(HEADER + ledger_rows(2, 4) + "l5,lots,\n" + ledger_rows(6, 7))
    pings = local_platform.landing_dir / "pings" / "p.jsonl"
    pings.parent.mkdir(parents=True)
    pings.write_text("".join(f'{{"host": "h{i}", "ok": {str(i % 2 == 0).lower()}}}\n' for i in range(5)))

    first = materialize(project_dir, sources_file)
    assert not first.success
    failure = "\n".join(e.step_failure_data.error.message for e in first.get_step_failure_events())
    assert f"raw/{SOURCE}/ledger: {ledger} line 5: column 'cents'" in failure
    assert [line for _, line in raw_lines("ledger")] == [2, 3, 4]  # the batches before the bad line
    assert [line for _, line in raw_lines("pings")] == [1, 2, 3, 4, 5]
    assert checks(first) == {"pings": (True, 5, 5)}

    ledger.write_text(HEADER + ledger_rows(2, 7))  # fixed: the stream resumes after line 4
    second = materialize(project_dir, sources_file)
    assert second.success
    assert checks(second) == {"ledger": (True, 3, 3), "pings": (True, 0, 0)}
    assert [line for _, line in raw_lines("ledger")] == [2, 3, 4, 5, 6, 7]

    # Every line sent again (a full refresh, as after a load whose STATE was lost): upserted, never copied.
    third = materialize(project_dir, sources_file, full_refresh=True)
    assert third.success
    assert checks(third) == {"ledger": (True, 6, 6), "pings": (True, 5, 5)}
    assert [line for _, line in raw_lines("ledger")] == [2, 3, 4, 5, 6, 7]
    assert [line for _, line in raw_lines("pings")] == [1, 2, 3, 4, 5]
    batches = local_platform.local_dir / "meltano" / "batches"
    assert not [path for path in batches.rglob("*") if path.is_file()]  # loaded batch files are deleted


def test_loader_buffers_record_messages_upserts_them_and_passes_state_after_they_are_committed(
    meltano_plugins, tmp_path
):
    """target-duckdb-bulk also serves taps without BATCH: RECORD messages are buffered and loaded alike."""
    schema = {
        "type": "SCHEMA",
        "stream": "Orders",
        "key_properties": ["order_id"],
        "schema": {"properties": {"order_id": {"type": ["string"]}, "total": {"type": ["number", "null"]}}},
    }
    wider = {
        **schema,
        "schema": {"properties": {**schema["schema"]["properties"], "note": {"type": ["string"]}}},
    }

    def record(order_id: str, total: float, **extra: str) -> dict:
        return {
            "type": "RECORD",
            "stream": "Orders",
            "record": {"order_id": order_id, "total": total, **extra},
        }

    messages = [
        schema,
        record("o1", 1.5),
        record("o2", 2.0),
        {"type": "STATE", "value": {"at": 1}},
        record("o2", 2.5),  # sent again: replaces its row
        wider,  # a column added since the table was made
        record("o3", 3.0, note="new"),
        {"type": "STATE", "value": {"at": 2}},
    ]
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"filepath": str(tmp_path / "w.duckdb"), "default_target_schema": "raw_shop"})
    )
    completed = subprocess.run(
        [
            str(meltano_plugins / ".meltano/loaders/target-duckdb-bulk/venv/bin/target-duckdb-bulk"),
            "--config",
            str(config),
        ],
        input="\n".join(map(json.dumps, messages)) + "\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert [json.loads(line) for line in completed.stdout.splitlines()] == [{"at": 1}, {"at": 2}]
    connection = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        rows = connection.execute(
            "SELECT order_id, total, note, _sdc_batched_at IS NOT NULL FROM raw_shop.orders ORDER BY 1"
        ).fetchall()
    finally:
        connection.close()
    assert rows == [("o1", 1.5, None, True), ("o2", 2.5, None, True), ("o3", 3.0, "new", True)]
