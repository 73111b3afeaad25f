"""Reading landing files line by line, typed and validated, resuming after the lines already emitted.

Kept free of the Singer SDK so the rules (what is malformed, how lines are counted) read in one place.
Line numbers are 1-based physical lines: a line is the bytes up to and including a newline (`\n`; a `\r`
before it is part of the line ending, so CRLF, LF and mixes read the same). A CSV file's header is line 1;
a CSV record whose quoted field spans lines ends on its last line, and that line is its `_source_line`
(the bookmark: resuming skips exactly the lines consumed).

Every way a file can be unreadable is a `LandingDataError` naming the file and line, never another
exception: invalid UTF-8, a UTF-16 file, NUL bytes, a record longer than the stream's `max_record_bytes`
(read in bounded pieces, so a huge line never sits in memory), an unbalanced quote, a bad or truncated-
for-good gzip stream. Accepted on purpose: a UTF-8 byte order mark at the start of the file (dropped),
CRLF/LF line endings, `.gz` compressed files. A last line with no newline yet is a line still being
written: reading stops before it (`LandingFile.waiting` says so) and it loads once its newline is there.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import io
import json
import sys
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import orjson

COLUMN_TYPES = ("string", "integer", "number", "decimal", "boolean", "date", "date-time")
FORMATS = ("csv", "jsonl")
MAX_RECORD_BYTES = 4 * 1024 * 1024  # default per stream; meltano.yml `max_record_bytes` overrides it
COMPRESSED_SUFFIX = ".gz"
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SKIP_CHUNK = 1024 * 1024
_READ_BUFFER = 1024 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


class LandingDataError(ValueError):
    """A landing file that cannot be read as declared; names the file and line."""

    def __init__(self, path: Path | str, line: int | None, reason: str):
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


def _to_integer(value: str | int) -> int:
    parsed = int(value)
    if not INT64_MIN <= parsed <= INT64_MAX:  # batch files and warehouse columns hold 64-bit integers
        raise ValueError("out of the 64-bit integer range")
    return parsed


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
    "integer": _to_integer,
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
        return _to_integer(value)
    if column_type == "number" and isinstance(value, (int, float)):
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "decimal" and isinstance(value, (int, float)):
        return _to_decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(f"expected {column_type}, got {type(value).__name__}")
    return _TEXT_CONVERTERS[column_type](value)


def _csv_row_converter(columns: dict[str, str], header: list[str]) -> Callable[[list[str]], dict[str, Any]]:
    """`convert` for a whole CSV row of text cells, written out as one function per file.

    The rules are `convert`'s for text: '' is null, a string column keeps its text, any other column goes
    to its type's parser. Written out (as `collections.namedtuple` builds its classes) because a call per
    cell was the tap's largest cost; names enter the code only as `repr` literals.
    """
    cells = []
    for name, kind in columns.items():
        cell = f"row[{header.index(name)}]"
        value = f"({cell} or None)" if kind == "string" else f"(parse[{kind!r}]({cell}) if {cell} else None)"
        cells.append(f"{name!r}: {value}")
    namespace: dict[str, Any] = {"parse": _TEXT_CONVERTERS}
    exec(f"def convert_row(row):\n    return {{{', '.join(cells)}}}\n", namespace)
    return namespace["convert_row"]


def _json_converter(column_type: str) -> Callable[[Any], Any]:
    """`convert` with the common JSON case first (a value already of its type); the rest goes to `convert`."""
    if column_type == "string":
        return lambda value: (value or None) if type(value) is str else convert(value, column_type)
    if column_type == "integer":
        return lambda value: (
            value if type(value) is int and INT64_MIN <= value <= INT64_MAX else convert(value, column_type)
        )
    native: dict[str, type] = {"number": float, "boolean": bool}
    if column_type in native:
        kind = native[column_type]
        return lambda value: value if type(value) is kind else convert(value, column_type)
    parse = _TEXT_CONVERTERS[column_type]
    return lambda value: parse(value) if type(value) is str and value else convert(value, column_type)


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


class LandingFile:
    """The physical lines of one landing file as text, each checked at the byte level, numbered from 1.

    `line` is the number of the last line read; `waiting` says why reading stopped early without an
    error (a last line with no newline yet, a compressed file not written to its end yet).
    """

    def __init__(
        self,
        path: Path | str,
        max_record_bytes: int = MAX_RECORD_BYTES,
        opener: Callable[[], IO[bytes]] | None = None,
    ):
        self.path = path  # as errors name it: a local path or a URL (s3://bucket/…)
        self._opener = opener or (lambda: Path(path).open("rb", buffering=0))  # noqa: SIM115 (open() closes it)
        self.max_record_bytes = max_record_bytes
        self.line = 0
        self.waiting: str | None = None
        self.record_start = 1  # first line of the record being read (a CSV record may span lines)
        self._record_bytes = 0

    def error(self, reason: str, line: int | None = None) -> LandingDataError:
        return LandingDataError(self.path, self.line if line is None else line, reason)

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """The file's bytes (decompressed for `.gz`), buffered: every reader bounds `readline` by size."""
        with self._opener() as raw, io.BufferedReader(raw, _READ_BUFFER) as buffered:  # type: ignore[arg-type]
            if str(self.path).endswith(COMPRESSED_SUFFIX):
                with gzip.GzipFile(fileobj=buffered, mode="rb") as unzipped:
                    yield unzipped
            else:
                yield buffered

    def start_record(self) -> None:
        self.record_start, self._record_bytes = self.line + 1, 0

    def skip(self, handle: IO[bytes], count: int) -> None:
        """Skip to the end of line `count` (lines already loaded), failing when the file is shorter."""
        while self.line < count:
            piece = self._read(handle.readline, _SKIP_CHUNK)  # bounded: a line may be long
            if not piece or (not piece.endswith(b"\n") and len(piece) < _SKIP_CHUNK):
                raise LandingDataError(
                    self.path,
                    None,
                    f"the file has fewer lines than the {count} already loaded from it; it was rewritten or "
                    "truncated after loading. Landing files are append-only: restore it, or drop it in as a "
                    "new file and run a full refresh of this stream.",
                )
            self.line += piece.endswith(b"\n")
        self.start_record()

    def lines(self, handle: IO[bytes]) -> Iterator[str]:
        """Each following complete line, decoded; stops before a last line that has no newline yet."""
        limit = self.max_record_bytes
        while True:
            raw = self._read(handle.readline, limit + 1)
            if not raw:
                return
            number = self.line + 1
            self._record_bytes += len(raw)
            if len(raw) > limit or self._record_bytes > limit:
                raise self.error(
                    f"the record is longer than {limit:,} bytes (the stream's max_record_bytes); a value "
                    "this large is usually a broken export (e.g. an unclosed quote). Fix the file, or "
                    "raise max_record_bytes for this stream in meltano.yml",
                    self.record_start,
                )
            if not raw.endswith(b"\n"):
                self.waiting = (
                    f"line {number} has no newline yet (still being written?); it loads once it ends with one"
                )
                return
            self.line = number
            yield self._decode(raw, number)

    def _read(self, read: Callable[[int], bytes], size: int) -> bytes:
        try:
            return read(size)
        except EOFError:  # a gzip stream that ends early: still being written, or truncated for good
            self.waiting = (
                f"the compressed file ends before its end marker after line {self.line} (still being "
                "written?); the rest loads once it is complete"
            )
            return b""
        except (gzip.BadGzipFile, zlib.error) as error:
            reason = f"not a valid gzip file ({error}); re-compress it or drop it uncompressed"
            raise self.error(reason, self.line + 1) from None

    def _decode(self, raw: bytes, number: int) -> str:
        if number == 1 and raw.startswith(_UTF16_BOMS):
            raise self.error("the file is UTF-16 (byte order mark); landing files are UTF-8: re-export it")
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]  # a UTF-8 byte order mark: accepted, not part of the data
        if (nul := raw.find(b"\x00")) >= 0:
            raise self.error(
                f"contains a NUL byte at byte {nul + 1} of the line (a binary or UTF-16 file?); landing "
                "files are UTF-8 text"
            )
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise self.error(
                f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1} of the line); "
                "landing files are UTF-8: re-export the file as UTF-8"
            ) from None


def read_csv(
    file: LandingFile, columns: dict[str, str], after_line: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line, record) for each CSV record that ends after `after_line`."""
    csv.field_size_limit(sys.maxsize)  # LandingFile bounds a record's bytes, naming the line
    with file.open() as handle:
        lines = file.lines(handle)
        reader = csv.reader(lines, strict=True)
        header = _next_csv(file, reader)
        if header is None:
            return
        path = file.path
        if problem := header_problem(header, columns):
            raise LandingDataError(path, 1, problem)
        if after_line > file.line:
            file.skip(handle, after_line)
        # A row that fails conversion is converted again by `_typed`, which names the column and the value.
        convert_row = _csv_row_converter(columns, header)
        while (row := _next_csv(file, reader)) is not None:
            if not row:
                continue
            if len(row) != len(header):
                raise file.error(f"expected {len(header)} columns as in the header, found {len(row)}")
            try:
                record = convert_row(row)
            except (ValueError, ArithmeticError):
                record = _typed(dict(zip(header, row, strict=True)), columns, path, file.line)
            yield file.line, record


def header_problem(header: list[str], columns: dict[str, str]) -> str | None:
    """Why a CSV header does not fit the declared columns, or None."""
    missing = [name for name in columns if name not in header]
    unexpected = [name for name in header if name not in columns]
    if not (missing or unexpected or len(set(header)) != len(header)):
        return None
    return (
        f"header does not match the declared columns (missing: {missing or 'none'}, "
        f"undeclared: {unexpected or 'none'}, duplicates: {len(header) != len(set(header))}); "
        "fix the file or the stream's columns in meltano.yml"
    )


def _next_csv(file: LandingFile, reader: Any) -> list[str] | None:
    """The next CSV record (None at the end, or where the rest is still being written)."""
    file.start_record()
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as error:
        if file.waiting:  # the record's last line has no newline yet
            return None
        if "unexpected end of data" in str(error):
            reason = "a quoted field opened in this record is never closed (unbalanced quote)"
        elif "new-line character" in str(error):
            reason = "a carriage return inside an unquoted value (old Mac line endings?); use LF or CRLF"
        else:
            reason = f"not valid CSV ({error})"
        raise file.error(reason, file.record_start) from None


def _parse_json(text: str) -> Any:
    """orjson where it accepts the line (several times faster); the standard library otherwise, so what is
    accepted and every error message stay the standard library's (orjson refuses e.g. NaN, lone surrogates
    and integers over 64 bits, which json.loads reads)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def read_jsonl(
    file: LandingFile, columns: dict[str, str], after_line: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line, record) for each JSON line after `after_line`."""
    path = file.path
    declared = columns.keys()
    plan = [(name, _json_converter(kind)) for name, kind in columns.items()]
    with file.open() as handle:
        file.skip(handle, after_line)
        for text in file.lines(handle):
            line = file.line
            file.start_record()  # the next record starts on the next line
            if not text.strip():
                continue
            try:
                raw = _parse_json(text)
            except json.JSONDecodeError as error:
                raise LandingDataError(
                    path, line, f"not valid JSON ({error.msg} at column {error.colno})"
                ) from None
            if not isinstance(raw, dict):
                raise LandingDataError(path, line, f"expected a JSON object, found {type(raw).__name__}")
            if not raw.keys() <= declared:
                unexpected = sorted(set(raw) - set(columns))
                raise LandingDataError(
                    path, line, f"undeclared fields {unexpected}; declare them in the stream's columns"
                )
            try:  # as for CSV: `_typed` converts a failing record again to name its column
                record = {name: to_type(raw.get(name)) for name, to_type in plan}
            except (ValueError, ArithmeticError):
                record = _typed(raw, columns, path, line)
            yield line, record


READERS = {"csv": read_csv, "jsonl": read_jsonl}
