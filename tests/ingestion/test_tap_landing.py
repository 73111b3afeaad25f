"""tap-landing, run as a Singer tap from its Meltano-installed venv: errors name file and line; state."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ingestion.hostile import run_tap_landing

pytestmark = pytest.mark.integration

COLUMNS = {"event_id": "string", "quantity": "integer", "occurred_at": "date-time"}


def run_tap(
    project: Path, tmp_path: Path, fmt: str, state: dict | None = None
) -> subprocess.CompletedProcess:
    config = {
        "root": str(tmp_path / "landing"),
        "streams": [{"name": "events", "format": fmt, "primary_keys": ["event_id"], "columns": COLUMNS}],
    }
    return run_tap_landing(project, tmp_path, config, state)


def messages(output: str, kind: str) -> list[dict]:
    return [m for m in map(json.loads, output.splitlines()) if m["type"] == kind]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "landing" / "events" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_bad_json_line_fails_naming_file_and_line_after_emitting_earlier_lines(meltano_plugins, tmp_path):
    path = write(
        tmp_path,
        "a.jsonl",
        '{"event_id": "e1", "quantity": 1, "occurred_at": "2026-03-01T12:00:00Z"}\n'
        '{"event_id": "e2", "quantity": 1\n',
    )
    completed = run_tap(meltano_plugins, tmp_path, "jsonl")
    assert completed.returncode != 0
    assert f"{path} line 2: not valid JSON" in completed.stderr
    assert [r["record"]["event_id"] for r in messages(completed.stdout, "RECORD")] == ["e1"]


def test_unparsable_typed_value_and_wrong_column_count_fail_naming_file_and_line(meltano_plugins, tmp_path):
    path = write(tmp_path, "a.csv", "event_id,quantity,occurred_at\ne1,1,2026-03-01T12:00:00Z\ne2,many,x\n")
    completed = run_tap(meltano_plugins, tmp_path, "csv")
    assert completed.returncode != 0
    assert f"{path} line 3: column 'quantity': 'many' is not a valid integer" in completed.stderr
    path.write_text("event_id,quantity,occurred_at\ne1,1\n")
    completed = run_tap(meltano_plugins, tmp_path, "csv")
    assert f"{path} line 2: expected 3 columns as in the header, found 2" in completed.stderr


def test_bookmark_per_file_emits_only_lines_after_it_with_source_file_and_line(meltano_plugins, tmp_path):
    write(tmp_path, "a.csv", "event_id,quantity,occurred_at\ne1,1,2026-03-01T12:00:00Z\ne2,2,\n")
    write(tmp_path, "b.csv", "event_id,quantity,occurred_at\ne3,3,2026-03-01T12:00:00Z\n")
    first = run_tap(meltano_plugins, tmp_path, "csv")
    assert first.returncode == 0, first.stderr
    records = [m["record"] for m in messages(first.stdout, "RECORD")]
    assert [(r["event_id"], r["_source_file"], r["_source_line"]) for r in records] == [
        ("e1", "events/a.csv", 2),
        ("e2", "events/a.csv", 3),
        ("e3", "events/b.csv", 2),
    ]
    assert records[1]["occurred_at"] is None and records[1]["quantity"] == 2
    schema = messages(first.stdout, "SCHEMA")[0]
    assert schema["key_properties"] == ["_source_file", "_source_line"]  # a re-sent line is an upsert
    state = messages(first.stdout, "STATE")[-1]["value"]
    with (tmp_path / "landing/events/a.csv").open("a") as handle:
        handle.write("e4,4,2026-03-02T00:00:00Z\n")
    second = run_tap(meltano_plugins, tmp_path, "csv", state)
    assert second.returncode == 0, second.stderr
    assert [m["record"]["event_id"] for m in messages(second.stdout, "RECORD")] == ["e4"]
    third = run_tap(meltano_plugins, tmp_path, "csv", messages(second.stdout, "STATE")[-1]["value"])
    assert messages(third.stdout, "RECORD") == []


def test_file_shorter_than_its_bookmark_fails_instead_of_skipping(meltano_plugins, tmp_path):
    path = write(tmp_path, "a.csv", "event_id,quantity,occurred_at\ne1,1,\n")
    state = {
        "bookmarks": {
            "events": {
                "partitions": [
                    {
                        "context": {"file": "events/a.csv"},
                        "replication_key": "_source_line",
                        "replication_key_value": 9,
                    }
                ]
            }
        }
    }
    completed = run_tap(meltano_plugins, tmp_path, "csv", state)
    assert completed.returncode != 0
    assert f"{path}: the file has fewer lines than the 9 already loaded" in completed.stderr
