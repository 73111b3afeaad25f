"""Runs in tap-landing's venv (it imports tap_landing): each case read by both of the tap's readers.

Input (stdin): a JSON list of cases {"format", "columns", "data" (the file's bytes, base64), optional
"max_record_bytes", "after_line"}. Output (stdout): per case {"fast": [[line, values], ...] from the fast
reader's tables, "complete": whether it read the file to its end, "why": why it stopped, "line": [[line,
values], ...] from the line reader, "error": the line reader's error or null, "bulk" and "bulk_error": the
same as the tap reads in bulk mode (the fast reader, then the line reader after the fast reader's line)}.
Values are tagged with their Python type (`["int", "5"]`), so 1, 1.0 and True differ.
"""

from __future__ import annotations

import base64
import io
import json
import sys
from typing import Any

from tap_landing.columnar import ChunkReader
from tap_landing.parsing import READERS, LandingDataError, LandingFile


def tagged(value: Any) -> list[str] | None:
    return None if value is None else [type(value).__name__, repr(value)]


def read_both(case: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64decode(case["data"])
    columns: dict[str, str] = case["columns"]
    after = case.get("after_line", 0)

    def file() -> LandingFile:
        name = f"case.{case['format']}"
        return LandingFile(name, case.get("max_record_bytes") or 4 * 1024 * 1024, lambda: io.BytesIO(data))

    def by_line(after_line: int) -> tuple[list, str | None]:
        rows, error = [], None
        try:
            for number, record in READERS[case["format"]](file(), columns, after_line):
                rows.append([number, {name: tagged(record[name]) for name in columns}])
        except LandingDataError as failure:
            error = str(failure)
        return rows, error

    reader = ChunkReader(file(), case["format"], columns)
    fast = []
    for first, table in reader.tables(after):
        for offset, row in enumerate(table.to_pylist()):
            fast.append([first + offset, {name: tagged(row[name]) for name in columns}])
    line, error = by_line(after)
    # As the tap reads in bulk mode: the fast reader's tables, then the line reader after its last line.
    rest, rest_error = ([], None) if reader.complete else by_line(reader.line)
    return {
        "fast": fast,
        "complete": reader.complete,
        "why": reader.why,
        "line": line,
        "error": error,
        "bulk": fast + rest,
        "bulk_error": rest_error,
    }


if __name__ == "__main__":
    json.dump([read_both(case) for case in json.load(sys.stdin)], sys.stdout)
