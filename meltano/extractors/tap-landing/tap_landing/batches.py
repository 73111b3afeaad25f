"""Batch files of validated landing records, in one of the Singer SDK's BATCH encodings.

- `jsonl`: gzipped JSON Lines (compression level 1: batch files live for one run, so speed beats size); every
  loader that reads BATCH messages reads it (target-snowflake's stage + COPY/MERGE).
- `parquet`: typed columns, snappy; much faster to write from the fast reader's Arrow tables and to read
  (target-duckdb-bulk's `read_parquet`).

A file is written under a dot-name and renamed when complete, so a loader never sees half a batch. Each
record also carries `_sdc_batched_at` (when its batch was made): loaders that copy batch files as they are
stamp no row themselves, and the platform's reconciliation counts rows by that stamp.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import uuid
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DEFAULT_BATCH_SIZE_ROWS = 200_000
BATCH_FORMATS = ("jsonl", "parquet")
BATCHED_AT = "_sdc_batched_at"
SOURCE_FILE = "_source_file"
SOURCE_LINE = "_source_line"
# Records reach gzip through one reused 1 MiB buffer: bounded memory, few calls into zlib. (Joining lists of
# serialized records instead churned the heap: about one page fault per record, 2 s of system time per 1M.)
_BUFFER_BYTES = 1024 * 1024
# Parquet row groups of at least DuckDB's row group size: smaller ones measured about 10% slower to load.
_ROW_GROUP_ROWS = 122_880


def clear_leftovers(directory: Path) -> None:
    """Delete a stream's batch files left by an earlier run that was killed (a half-written file, or one
    written but never loaded). Safe at the start of a run: Meltano runs one pipeline per state id at a
    time, and whatever such a file held is extracted again because its bookmark was never saved."""
    if directory.is_dir():
        for leftover in directory.iterdir():
            leftover.unlink(missing_ok=True)


def arrow_schema(columns: dict[str, pa.DataType]) -> pa.Schema:
    """A batch's columns: the stream's declared ones, then the lineage columns and the batch stamp."""
    lineage = [(SOURCE_FILE, pa.string()), (SOURCE_LINE, pa.int64()), (BATCHED_AT, pa.string())]
    return pa.schema([*columns.items(), *lineage])


class BatchFile:
    """One batch being written; `last_lines` holds, per landing file, the last line it holds.

    Records come one at a time (`write`, a dict from the line reader) or as tables of consecutive lines of one
    file (`write_table`, from the fast reader)."""

    def __init__(self, directory: Path, stream: str, file_format: str, schema: pa.Schema):
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{stream}-{uuid.uuid4().hex}.{file_format}{'.gz' if file_format == 'jsonl' else ''}"
        self.path = directory / name
        self._partial = directory / f".{name}"
        self._schema = schema
        self._batched_at = dt.datetime.now(dt.UTC).isoformat()
        self.rows = 0
        self.last_lines: dict[str, int] = {}
        self._records: list[dict[str, Any]] = []
        self._tables: list[pa.Table] = []  # the next Parquet row group
        self._parquet: pq.ParquetWriter | None = None
        self._jsonl: io.BufferedWriter | None = None
        if file_format == "parquet":
            # Dictionary encoding only where values repeat by design: elsewhere it cost half the write time.
            dictionary = [SOURCE_FILE, BATCHED_AT]
            self._parquet = pq.ParquetWriter(
                self._partial, schema, compression="snappy", use_dictionary=dictionary
            )
        else:
            compressed = gzip.open(self._partial, "wb", compresslevel=1)  # noqa: SIM115 - closed with _jsonl
            self._jsonl = io.BufferedWriter(compressed, buffer_size=_BUFFER_BYTES)  # type: ignore[arg-type]

    def write(self, record: dict[str, Any]) -> None:
        record[BATCHED_AT] = self._batched_at
        self.last_lines[record[SOURCE_FILE]] = record[SOURCE_LINE]
        self.rows += 1
        if self._jsonl is not None:
            self._jsonl.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))  # ~10x json.dumps
            return
        self._records.append(record)
        if len(self._records) >= _ROW_GROUP_ROWS:
            self._flush_records()

    def write_table(self, source_file: str, first_line: int, table: pa.Table) -> None:
        """Records of consecutive lines of one file, the first on `first_line`, in the declared columns."""
        rows = table.num_rows
        table = (
            table.append_column(SOURCE_FILE, pa.repeat(pa.scalar(source_file), rows))
            .append_column(SOURCE_LINE, _line_numbers(first_line, rows))
            .append_column(BATCHED_AT, pa.repeat(pa.scalar(self._batched_at), rows))
        )
        self._flush_records()  # keep records in line order
        if self._parquet is not None:
            self._add_to_row_group(table)
        else:
            assert self._jsonl is not None
            for record in table.to_pylist():
                self._jsonl.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.rows += rows
        self.last_lines[source_file] = first_line + rows - 1

    def close(self) -> str:
        """Finish the file; its URL for the BATCH message's manifest."""
        self._finish()
        self._partial.rename(self.path)
        return self.path.resolve().as_uri()

    def discard(self) -> None:
        self._finish()
        self._partial.unlink(missing_ok=True)

    def _flush_records(self) -> None:
        if self._records and self._parquet is not None:
            self._add_to_row_group(pa.Table.from_pylist(self._records, schema=self._schema))
        self._records = []

    def _add_to_row_group(self, table: pa.Table) -> None:
        self._tables.append(table)
        if sum(table.num_rows for table in self._tables) >= _ROW_GROUP_ROWS:
            self._write_row_group()

    def _write_row_group(self) -> None:
        if self._tables and self._parquet is not None:
            self._parquet.write_table(pa.concat_tables(self._tables), row_group_size=2 * _ROW_GROUP_ROWS)
        self._tables = []

    def _finish(self) -> None:
        if self._parquet is not None:
            self._flush_records()
            self._write_row_group()
            self._parquet.close()
        if self._jsonl is not None:
            self._jsonl.close()


def _line_numbers(first_line: int, rows: int) -> pa.Array:
    """first_line, first_line + 1, … (`rows` of them), computed in Arrow rather than from a Python range."""
    ones = pa.repeat(pa.scalar(1, pa.int64()), rows)
    return pc.add(pc.cumulative_sum(ones), first_line - 1)
