"""Hostile landing files through the real meltano, tap-landing and target-duckdb, counting raw rows.

Each case is a stream of its own (a shape the sample company does not have): good lines, one hostile line,
good lines. A case that cannot be read fails only its own asset with `<file> line <n>: <reason>`, after
the lines before it landed; a case the tap accepts on purpose (BOM, CRLF/LF, gzip, a quoted field across
lines, a last line still being written) lands every complete line. Then every file is fixed (or
completed) and the assets run again: each line of each file is in raw exactly once.
"""

from __future__ import annotations

import contextlib
import gzip
import signal
import socket
import threading
from pathlib import Path

import dagster as dg
import psutil
import pytest

from ingestion.hostile import hostile_project, materialize, raw_lines

pytestmark = pytest.mark.integration

CSV = {"format": "csv", "columns": {"id": "string", "n": "integer"}}
JSONL = {"format": "jsonl", "columns": {"id": "string", "n": "integer"}}
HEADER = b"id,n\n"
BIG = 5 * 1024 * 1024  # over the default max_record_bytes (4 MiB)


def rows(first: int, last: int, newline: bytes = b"\n") -> bytes:
    return b"".join(b"r%d,%d%s" % (i, i, newline) for i in range(first, last + 1))


def json_rows(first: int, last: int) -> bytes:
    return b"".join(b'{"id": "r%d", "n": %d}\n' % (i, i) for i in range(first, last + 1))


GZIPPED = gzip.compress(HEADER + rows(2, 6), mtime=0)
CSV_LINES = [2, 3, 4, 5, 6]  # a fixed CSV file: header, then r2..r6
JSONL_LINES = [1, 2, 3, 4, 5, 6]

# name -> (definition, file name, bytes as dropped, bytes once fixed, line of the error, reason)
FAILING: dict[str, tuple[dict, str, bytes, bytes, int, str]] = {
    "oversized_field": (
        CSV,
        "a.csv",
        HEADER + rows(2, 2) + b'r3,"' + b"x" * BIG + b'"\n' + rows(4, 6),
        HEADER + rows(2, 6),
        3,
        "the record is longer than 4,194,304 bytes",
    ),
    "invalid_utf8": (
        CSV,
        "a.csv",
        HEADER + rows(2, 2) + b"r\xff3,3\n" + rows(4, 6),
        HEADER + rows(2, 6),
        3,
        "not valid UTF-8 (byte 0xff at byte 2 of the line)",
    ),
    "nul_byte": (
        CSV,
        "a.csv",
        HEADER + rows(2, 2) + b"r3\x00,3\n" + rows(4, 6),
        HEADER + rows(2, 6),
        3,
        "contains a NUL byte at byte 3 of the line",
    ),
    "unbalanced_quote": (
        CSV,
        "a.csv",
        HEADER + rows(2, 2) + b'r3,"3\n' + rows(4, 6),
        HEADER + rows(2, 6),
        3,
        "a quoted field opened in this record is never closed (unbalanced quote)",
    ),
    "header_changed": (
        CSV,
        "a.csv",
        b"id,count\n" + rows(2, 6),
        HEADER + rows(2, 6),
        1,
        "header does not match the declared columns (missing: ['n'], undeclared: ['count']",
    ),
    "utf16_file": (
        CSV,
        "a.csv",
        (HEADER + rows(2, 6)).decode().encode("utf-16"),
        HEADER + rows(2, 6),
        1,
        "the file is UTF-16",
    ),
    "not_gzip": (
        CSV,
        "a.csv.gz",
        HEADER + rows(2, 6),
        gzip.compress(HEADER + rows(2, 6), mtime=0),
        1,
        "not a valid gzip file",
    ),
    "lone_carriage_return": (
        CSV,
        "a.csv",
        HEADER + rows(2, 2) + b"r3,3\rr4,4\n" + rows(5, 6),
        HEADER + rows(2, 6),
        3,
        "a carriage return inside an unquoted value",
    ),
    "bad_json": (
        JSONL,
        "a.jsonl",
        json_rows(1, 2) + b'{"id": "r3", "n": 3\n' + json_rows(4, 6),
        json_rows(1, 6),
        3,
        "not valid JSON",
    ),
}
# Accepted on purpose: name -> (definition, file name, bytes, the lines that land)
ACCEPTED: dict[str, tuple[dict, str, bytes, list[int]]] = {
    "bom_crlf": (CSV, "a.csv", b"\xef\xbb\xbfid,n\r\n" + rows(2, 6, b"\r\n"), CSV_LINES),
    "mixed_line_endings": (
        CSV,
        "a.csv",
        HEADER + rows(2, 3, b"\r\n") + rows(4, 5) + rows(6, 6, b"\r\n"),
        CSV_LINES,
    ),
    # A quoted value across lines 4-5 is one record, bookmarked at its last line.
    "quoted_newline": (CSV, "a.csv", HEADER + rows(2, 3) + b'"r\n4",4\n' + rows(5, 6), [2, 3, 5, 6, 7]),
    "gzip_file": (CSV, "a.csv.gz", gzip.compress(HEADER + rows(2, 6), mtime=0), CSV_LINES),
    "jsonl_bom_crlf": (
        JSONL,
        "a.jsonl",
        b"\xef\xbb\xbf" + json_rows(1, 6).replace(b"\n", b"\r\n"),
        JSONL_LINES,
    ),
}
# Still being written: the last line has no newline yet; it loads once it has one.
# name -> (definition, file name, bytes, bytes appended later, the lines that land first, then all)
WRITING: dict[str, tuple[dict, str, bytes, bytes, list[int], list[int]]] = {
    "csv_being_written": (
        CSV,
        "a.csv",
        HEADER + rows(2, 5) + b"r6,6",
        b"\n" + rows(7, 7),
        [2, 3, 4, 5],
        [*CSV_LINES, 7],
    ),
    "jsonl_being_written": (
        JSONL,
        "a.jsonl",
        json_rows(1, 5) + b'{"id": "r6", "n": 6}',
        b"\n",
        JSONL_LINES[:-1],
        JSONL_LINES,
    ),
    # A gzip file without its trailer yet: its complete lines land, the end marker is waited for.
    "gzip_being_written": (CSV, "a.csv.gz", GZIPPED[:-8], GZIPPED[-8:], CSV_LINES, CSV_LINES),
}


def lines(stream: str) -> list[int]:
    """The _source_line of every raw row of the stream (one file per stream), duplicates included."""
    return [line for _, line in raw_lines(stream)]


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(e.step_failure_data.error.message for e in result.get_step_failure_events())


# Record mode (RECORD messages into target-duckdb) and bulk mode (batch files of 2 records, so batch
# boundaries fall inside the files, into target-duckdb-bulk; JSONL batches as on Snowflake, Parquet as
# locally) keep the same guarantees.
@pytest.mark.parametrize(
    "bulk",
    [None, {"batch_size_rows": "2"}, {"batch_size_rows": "2", "batch_format": "parquet"}],
    ids=["record", "bulk-jsonl", "bulk-parquet"],
)
def test_hostile_files_fail_only_their_stream_and_load_each_line_exactly_once(
    meltano_plugins, local_platform, tmp_path, bulk
):
    cases = {**FAILING, **ACCEPTED, **WRITING}
    definitions = {n: c[0] for n, c in cases.items()}
    project_dir, sources_file = hostile_project(tmp_path / "project", definitions, bulk)
    paths = {name: local_platform.landing_dir / name / case[1] for name, case in cases.items()}
    for name, case in cases.items():
        paths[name].parent.mkdir(parents=True)
        paths[name].write_bytes(case[2])

    first = materialize(project_dir, sources_file)
    assert not first.success
    message = failure_message(first)
    landed = {e.asset_key.path[-1] for e in first.get_asset_materialization_events()}
    assert landed == set(ACCEPTED) | set(WRITING), message
    for name, (definition, _, _, _, line, reason) in FAILING.items():
        assert f"raw/drops/{name}: {paths[name]} line {line}: {reason}" in message, name
        good = CSV_LINES if definition is CSV else JSONL_LINES
        assert lines(name) == [n for n in good if n < line], name  # the lines before the bad one
    for name, (*_, expected) in ACCEPTED.items():
        assert lines(name) == expected, name
    for name, (*_, landed_first, _) in WRITING.items():
        assert lines(name) == landed_first, name
    waiting = {
        e.asset_key.path[-1]: e.materialization.metadata["input_waiting"].value
        for e in first.get_asset_materialization_events()
        if "input_waiting" in e.materialization.metadata
    }
    assert waiting.keys() == set(WRITING)
    assert f"{paths['csv_being_written']}: line 6 has no newline yet" in waiting["csv_being_written"]
    assert "the compressed file ends before its end marker" in waiting["gzip_being_written"]

    # Fix every file that failed, finish the ones being written, and run again: each line exactly once.
    for name, case in FAILING.items():
        paths[name].write_bytes(case[3])
    for name, (_, _, data, rest, _, _) in WRITING.items():
        paths[name].write_bytes(data + rest)
    second = materialize(project_dir, sources_file)
    assert second.success, failure_message(second)
    for name, (definition, *_) in FAILING.items():
        assert lines(name) == (CSV_LINES if definition is CSV else JSONL_LINES), name
    for name, (*_, expected) in ACCEPTED.items():
        assert lines(name) == expected, name
    for name, (*_, everything) in WRITING.items():
        assert lines(name) == everything, name


def test_a_plugin_killed_by_a_signal_is_named_with_its_exit_code_and_last_line(meltano_plugins, tmp_path):
    """A tap that dies without an error of its own (killed, or aborted in native code at exit) leaves Meltano
    saying only "Extractor failed": the asset's error adds which plugin, its exit code and signal, and its
    last line. The tap is held on an object store that accepts connections and never answers, then killed."""
    silent = socket.create_server(("127.0.0.1", 0))
    connected = threading.Event()

    def accept() -> None:
        with contextlib.suppress(OSError):
            held = [silent.accept()[0]]  # kept open, never answered
            connected.set()
            while True:
                held.append(silent.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    settings = {
        "root": "s3://landing",
        "endpoint_url": f"http://127.0.0.1:{silent.getsockname()[1]}",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    project_dir, sources_file = hostile_project(tmp_path / "project", {"ledger": CSV}, {}, settings)
    killer = threading.Thread(target=kill_tap_when, args=(connected,), daemon=True)
    killer.start()
    try:
        result = materialize(project_dir, sources_file)
    finally:
        silent.close()
    killer.join(timeout=5)
    assert not result.success
    message = failure_message(result)
    assert "[meltano] Extractor failed" in message, message
    assert "[tap-landing] exited with code -9 (SIGKILL); its last output: " in message, message


def kill_tap_when(connected: threading.Event) -> None:
    """SIGKILL the tap-landing process under this one once it holds a connection to the silent store."""
    assert connected.wait(timeout=120), "tap-landing never connected to the object store"
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(Path(part).name == "tap-landing" for part in child.cmdline()[:2]):
                child.send_signal(signal.SIGKILL)
