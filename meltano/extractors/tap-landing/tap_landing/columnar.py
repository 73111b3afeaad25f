"""Bulk mode's fast reader: whole chunks of a landing file into Arrow tables, at C speed.

The rules stay parsing.py's. This reader takes a chunk only where it can tell that parsing.py would read it
the same way and produce the same values; at the first chunk it cannot, it stops, and the stream reads the
rest of the file line by line with parsing.py, which accepts it or names the failing line. Every check here
is narrower than parsing.py's (an integer is `-?[0-9]{1,18}` where Python's `int()` also takes `+7`, `1_000`
or ` 7 `), so an unusual file costs speed, never a different result.

A chunk is the complete lines of at most `CHUNK_BYTES` (never more than the stream's `max_record_bytes`,
so no line in it can be over the limit) and is read fast when it is UTF-8 with no NUL byte and no carriage
return outside a CRLF line ending, and:
- CSV: holds no `"` and no empty line (so each line is one record whose cells lie between commas), and
  every line has the header's number of cells;
- JSONL: every line is one JSON object (orjson reads the chunk as one array) with declared keys only;
- every value passes its column's check: text against `TEXT_PATTERNS` (plus a calendar check for dates),
  JSON values of the column's own JSON type.
Line numbers follow: a chunk's records are its lines, in order.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterator
from typing import IO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from tap_landing.parsing import LandingFile, header_problem

CHUNK_BYTES = 8 * 1024 * 1024
MIN_CHUNK_BYTES = 64 * 1024  # a stream with a smaller max_record_bytes is read line by line only
_BOM = b"\xef\xbb\xbf"

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "decimal": pa.string(),  # kept as text, as parsing.py does
    "boolean": pa.bool_(),
    "date": pa.string(),
    "date-time": pa.string(),
}

_DATE = r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
_OFFSET = r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?"
_TRUE = r"[Tt][Rr][Uu][Ee]|[Tt]|1|[Yy][Ee][Ss]|[Yy]"
_FALSE = r"[Ff][Aa][Ll][Ss][Ee]|[Ff]|0|[Nn][Oo]|[Nn]"
# Text each column type accepts here: a subset of what its parsing.py converter accepts (RE2 syntax; ASCII
# only, so no case folding beyond what Python's `lower()` does).
TEXT_PATTERNS = {
    "integer": r"^-?[0-9]{1,18}$",  # within int64
    "number": r"^-?[0-9]{1,15}(\.[0-9]{1,15})?([eE][+-]?[0-9]{1,2})?$",  # finite; Arrow rounds as float()
    "decimal": r"^-?[0-9]{1,30}(\.[0-9]{1,30})?$",
    "boolean": f"^({_TRUE}|{_FALSE})$",
    "date": f"^{_DATE}$",
    "date-time": f"^{_DATE}[T ]{_TIME}{_OFFSET}$",
}
_TRUE_VALUES = pa.array(["true", "t", "1", "yes", "y"])


class Declined(Exception):
    """A chunk this reader cannot vouch for; the message says why (the line reader takes over)."""


class ChunkReader:
    """Tables of one landing file's lines after `after_line`, for as long as chunks pass (module doc).

    `line` is the last line read (or loaded before: never less than `after_line` once `tables` is done);
    `complete` says the file was read to its end; otherwise `why` says why not, and the line reader takes
    over after `line` (it reads what was left, names the error, or waits for an unfinished line).
    """

    def __init__(self, file: LandingFile, file_format: str, columns: dict[str, str]):
        self.file = file
        self.format = file_format
        self.columns = columns
        self.chunk_bytes = min(CHUNK_BYTES, file.max_record_bytes)
        self.line = 0
        self.complete = False
        self.why = ""

    def tables(self, after_line: int) -> Iterator[tuple[int, pa.Table]]:
        """(first line, table of the declared columns) per chunk read fast."""
        try:
            if self.chunk_bytes < MIN_CHUNK_BYTES:
                raise Declined(f"max_record_bytes is under {MIN_CHUNK_BYTES:,}")
            with self.file.open() as handle:
                header = self._header(handle) if self.format == "csv" else None
                for first_line, lines, chunk in self._chunks(handle, after_line):
                    if header is None:
                        table = self._jsonl(chunk, first_line, lines)
                    else:
                        table = self._csv(chunk, header, lines)
                    self.line = first_line + lines - 1
                    yield first_line, table
        except Declined as declined:
            self.why = f"lines after {self.line}: {declined}"
        except (OSError, EOFError, ValueError, ArithmeticError, TypeError, pa.ArrowException) as error:
            self.why = f"lines after {self.line}: {type(error).__name__}: {error}"
        self.line = max(self.line, after_line)  # e.g. stopped at the header: lines to the bookmark are loaded

    def _header(self, handle: IO[bytes]) -> list[str]:
        raw = handle.readline(self.chunk_bytes + 1)
        if not raw.endswith(b"\n") or b"\x00" in raw:
            raise Declined("no complete header line")
        text = raw.removeprefix(_BOM).decode("utf-8")  # UnicodeDecodeError is a ValueError: line reader
        header = next(csv.reader([text], strict=True), None)
        if not header or header_problem(header, self.columns):
            raise Declined("the header does not match the columns")
        self.line = 1
        return header

    def _chunks(self, handle: IO[bytes], after_line: int) -> Iterator[tuple[int, int, bytes]]:
        """(first line number, number of lines, bytes of those complete lines) after `after_line`."""
        line, rest = self.line, b""
        while True:
            data = handle.read(self.chunk_bytes - len(rest))
            block = rest + data
            cut = block.rfind(b"\n") + 1
            if not data:
                if block or line < after_line:
                    raise Declined("the last line has no newline, or the file is shorter than its bookmark")
                self.complete = True
                return
            if not cut:
                raise Declined(f"a line longer than {self.chunk_bytes:,} bytes")
            lines, chunk, rest = block.count(b"\n", 0, cut), block[:cut], block[cut:]
            if line + lines <= after_line:  # loaded already
                line = self.line = line + lines
                continue
            start = 0
            while line < after_line:  # the first lines of this chunk are loaded already
                start = chunk.index(b"\n", start) + 1
                line, lines = line + 1, lines - 1
            self.line = line
            yield line + 1, lines, chunk[start:]
            line += lines

    def _csv(self, chunk: bytes, header: list[str], lines: int) -> pa.Table:
        _check_plain_text(chunk)
        if b'"' in chunk:
            raise Declined("a double quote")
        # A native buffer, not io.BytesIO: Arrow's read-ahead threads call back into a Python file object,
        # and one still waiting for the GIL when the interpreter exits aborts the process ("terminate called
        # without an active exception", exit 134; apache/arrow#34314).
        table = pa_csv.read_csv(
            pa.BufferReader(chunk),
            read_options=pa_csv.ReadOptions(column_names=header),
            parse_options=pa_csv.ParseOptions(
                quote_char=False, escape_char=False, newlines_in_values=False, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )  # a line with another number of cells raises ArrowInvalid
        if table.num_rows != lines:
            raise Declined("records are not one per line")
        # An empty line is no record to csv but a record of empty cells to Arrow: search the bytes for one
        # only where Arrow read a record with every cell empty (rare; the search costs 10% of a chunk).
        all_empty = functools.reduce(pc.and_, [pc.equal(table[name], "") for name in header])
        if pc.any(all_empty).as_py() and _has_empty_line(chunk):
            raise Declined("an empty line")
        return _typed({name: table[name].combine_chunks() for name in self.columns}, self.columns)

    def _jsonl(self, chunk: bytes, first_line: int, lines: int) -> pa.Table:
        if first_line == 1:
            chunk = chunk.removeprefix(_BOM)
        _check_plain_text(chunk)
        try:  # one array of the chunk's lines: an empty line, or two values on one, does not parse
            values = orjson.loads(b"[" + chunk[:-1].replace(b"\n", b",") + b"]")
        except orjson.JSONDecodeError as error:
            raise Declined(f"not a JSON value per line ({error})") from None
        if len(values) != lines:
            raise Declined("not one JSON value per line")
        objects = pa.array(values)  # mixed types, or an integer over 64 bits, raise
        if not pa.types.is_struct(objects.type) or objects.null_count:
            raise Declined("a line that is not a JSON object")
        fields = {objects.type.field(i).name for i in range(objects.type.num_fields)}
        if not fields <= self.columns.keys():
            raise Declined("undeclared fields")
        arrays = {
            name: objects.field(name) if name in fields else pa.nulls(len(objects)) for name in self.columns
        }
        return _typed(arrays, self.columns)


def _check_plain_text(chunk: bytes) -> None:
    """UTF-8 with no NUL byte and no carriage return outside a CRLF line ending."""
    if b"\x00" in chunk:
        raise Declined("a NUL byte")
    if b"\r" in chunk and chunk.count(b"\r") != chunk.count(b"\r\n"):
        raise Declined("a carriage return outside a line ending")
    chunk.decode("utf-8")  # UnicodeDecodeError is a ValueError


def _has_empty_line(chunk: bytes) -> bool:
    return chunk.startswith((b"\n", b"\r\n")) or b"\n\n" in chunk or b"\n\r\n" in chunk


def _typed(arrays: dict[str, pa.Array], columns: dict[str, str]) -> pa.Table:
    typed = {name: _typed_array(arrays[name], kind, name) for name, kind in columns.items()}
    return pa.table(typed, schema=pa.schema([(name, ARROW_TYPES[kind]) for name, kind in columns.items()]))


def _typed_array(values: pa.Array, kind: str, name: str) -> pa.Array:
    """One column in its declared type, where every value is certainly read as parsing.py reads it.

    Text follows `TEXT_PATTERNS` ('' is null); JSON values of the column's own type pass as they are (an
    integer for a number column becomes a float, for a text column its digits, as `convert` does)."""
    source, target = values.type, ARROW_TYPES[kind]
    if pa.types.is_null(source):
        return pa.nulls(len(values), target)
    if pa.types.is_string(source):
        return _from_text(values, kind, name)
    if pa.types.is_int64(source) and kind in ("integer", "number", "string"):
        return values.cast(target)
    if kind in ("number", "boolean") and source == target:  # JSON numbers and booleans as they are
        return values
    raise Declined(f"column '{name}': {source} values for a {kind} column")


def _from_text(values: pa.Array, kind: str, name: str) -> pa.Array:
    text = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)  # '' is null
    if kind == "string":
        return text
    if pc.all(pc.match_substring_regex(text, TEXT_PATTERNS[kind])).as_py() is False:  # None: all null
        raise Declined(f"column '{name}': a value outside the fast {kind} pattern")
    if kind == "boolean":
        truth = pc.is_in(pc.utf8_lower(text), _TRUE_VALUES)
        return pc.if_else(pc.is_null(text), pa.scalar(None, pa.bool_()), truth)
    if kind in ("date", "date-time"):  # the pattern cannot see the calendar (Feb 30): Arrow's date cast does
        pc.utf8_slice_codeunits(text, 0, 10).cast(pa.date32())  # raises ArrowInvalid
        return text
    return text.cast(ARROW_TYPES[kind])
