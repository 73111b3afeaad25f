"""Reading landing files line by line, typed and validated, resuming after the lines already emitted.

Kept free of the Singer SDK so the rules (what is malformed, how lines are counted) read in one place.
Line numbers are 1-based physical line numbers in the file; a CSV file's header is line 1.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

COLUMN_TYPES = ("string", "integer", "number", "decimal", "boolean", "date", "date-time")
FORMATS = ("csv", "jsonl")
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


class LandingDataError(ValueError):
    """A landing file that cannot be read as declared; names the file and line."""

    def __init__(self, path: Path, line: int | None, reason: str):
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path} line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


def json_schema_for(column_type: str) -> dict[str, Any]:
    """The JSON schema of one declared column (always nullable: an empty CSV cell is a null)."""
    schemas: dict[str, dict[str, Any]] = {
        "string": {"type": ["string", "null"]},
        "integer": {"type": ["integer", "null"]},
        "number": {"type": ["number", "null"]},
        # Money stays a decimal string so no float rounding happens before staging casts it.
        "decimal": {"type": ["string", "null"]},
        "boolean": {"type": ["boolean", "null"]},
        "date": {"type": ["string", "null"], "format": "date"},
        "date-time": {"type": ["string", "null"], "format": "date-time"},
    }
    return schemas[column_type]


def _to_decimal(value: str) -> str:
    parsed = Decimal(value)
    if not parsed.is_finite():
        raise InvalidOperation(value)
    return value


def _to_boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(value)


def _to_date(value: str) -> str:
    dt.date.fromisoformat(value)
    return value


def _to_datetime(value: str) -> str:
    dt.datetime.fromisoformat(value)
    return value


_TEXT_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "string": str,
    "integer": int,
    "number": float,
    "decimal": _to_decimal,
    "boolean": _to_boolean,
    "date": _to_date,
    "date-time": _to_datetime,
}


def convert(value: Any, column_type: str) -> Any:
    """Convert one cell (CSV text or JSON value) to its declared type; None and '' are null."""
    if value is None or value == "":
        return None
    if column_type == "string":
        if isinstance(value, (dict, list)):
            raise ValueError(f"expected text, got {type(value).__name__}")
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, bool) and column_type != "boolean":
        raise ValueError(f"expected {column_type}, got boolean")
    if column_type == "integer" and isinstance(value, int):
        return value
    if column_type == "number" and isinstance(value, (int, float)):
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "decimal" and isinstance(value, (int, float)):
        return _to_decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(f"expected {column_type}, got {type(value).__name__}")
    return _TEXT_CONVERTERS[column_type](value)


def _typed(raw: dict[str, Any], columns: dict[str, str], path: Path, line: int) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, column_type in columns.items():
        value = raw.get(name)
        try:
            record[name] = convert(value, column_type)
        except (ValueError, ArithmeticError) as error:
            raise LandingDataError(
                path, line, f"column '{name}': {value!r} is not a valid {column_type} ({error})"
            ) from None
    return record


def _skip(lines: Iterator[str], count: int, path: Path, already: int) -> None:
    """Skip `count` physical lines, failing when the file is shorter than what was already emitted."""
    skipped = sum(1 for _ in itertools.islice(lines, count))
    if skipped < count:
        raise LandingDataError(
            path,
            None,
            f"the file has fewer lines than the {already} already loaded from it; it was rewritten or "
            "truncated after loading. Landing files are append-only: restore it, or drop it in as a new "
            "file and run a full refresh of this stream.",
        )


def read_csv(path: Path, columns: dict[str, str], after_line: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line, record) for each CSV row that ends after `after_line`."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        missing = [name for name in columns if name not in header]
        unexpected = [name for name in header if name not in columns]
        if missing or unexpected or len(set(header)) != len(header):
            raise LandingDataError(
                path,
                1,
                f"header does not match the declared columns (missing: {missing or 'none'}, "
                f"undeclared: {unexpected or 'none'}, duplicates: {len(header) != len(set(header))}); "
                "fix the file or the stream's columns in meltano.yml",
            )
        offset = 0
        if after_line > reader.line_num:
            offset = after_line - reader.line_num
            _skip(handle, offset, path, after_line)
        for row in reader:
            line = reader.line_num + offset
            if not row:
                continue
            if len(row) != len(header):
                raise LandingDataError(
                    path, line, f"expected {len(header)} columns as in the header, found {len(row)}"
                )
            yield line, _typed(dict(zip(header, row, strict=True)), columns, path, line)


def read_jsonl(path: Path, columns: dict[str, str], after_line: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line, record) for each JSON line after `after_line`."""
    with path.open(encoding="utf-8") as handle:
        _skip(handle, after_line, path, after_line)
        for line, text in enumerate(handle, start=after_line + 1):
            if not text.strip():
                continue
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as error:
                raise LandingDataError(
                    path, line, f"not valid JSON ({error.msg} at column {error.colno})"
                ) from None
            if not isinstance(raw, dict):
                raise LandingDataError(path, line, f"expected a JSON object, found {type(raw).__name__}")
            unexpected = sorted(set(raw) - set(columns))
            if unexpected:
                raise LandingDataError(
                    path, line, f"undeclared fields {unexpected}; declare them in the stream's columns"
                )
            yield line, _typed(raw, columns, path, line)


READERS = {"csv": read_csv, "jsonl": read_jsonl}
