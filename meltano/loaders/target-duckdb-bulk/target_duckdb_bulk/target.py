"""target-duckdb-bulk: a Singer target that loads DuckDB in bulk, with DuckDB's own file readers.

- BATCH messages (the Singer SDK's `jsonl` encoding, gzipped or not, or its `parquet` encoding; `file://`
  manifests): files are read by `read_json` with the stream's declared columns, or by `read_parquet` with
  the types they hold, and loaded in one transaction. Consecutive BATCH messages of a stream that are
  already waiting on stdin (the tap wrote them faster than they load) load together, in one transaction
  (one load of several files measured about 10% faster than one per file); the STATE messages between
  them wait for that commit.
- RECORD messages (taps without BATCH) are buffered in a local JSON Lines file of at most `batch_size_rows`
  records and loaded the same way.
- Streams with key properties are upserted on them: a plain `INSERT` first, and where the table's primary
  key refuses it (a row sent again), `INSERT OR REPLACE`, so the row replaces its copy instead of adding
  one. Without keys rows are appended.
- A STATE message is written to stdout only after every record and batch before it is committed, so the
  bookmark Meltano saves never runs ahead of the warehouse.
- Tables have the shape target-duckdb 0.8.0 gives them (lower-case columns, its type mapping, metadata
  columns `_sdc_extracted_at`, `_sdc_batched_at`, `_sdc_deleted_at`, a primary key on the key properties),
  so either loader can continue a table the other started. `_sdc_batched_at` is the load time (local,
  naive, as target-duckdb stamps it), `_sdc_extracted_at` the tap's time (a batch row's `_sdc_batched_at`,
  a RECORD message's `time_extracted`).
- One process holds the DuckDB file from start to end (DuckDB allows one writer per file).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import queue
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

import duckdb

LOG = logging.getLogger("target-duckdb-bulk")
EXTRACTED_AT = "_sdc_extracted_at"
BATCHED_AT = "_sdc_batched_at"
METADATA_COLUMNS = {EXTRACTED_AT: "TIMESTAMP", BATCHED_AT: "TIMESTAMP", "_sdc_deleted_at": "VARCHAR"}
DEFAULT_BUFFER_ROWS = 100_000


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_type(schema: dict[str, Any]) -> str:
    """target-duckdb 0.8.0's JSON-schema-to-DuckDB mapping (tables keep their shape across loaders)."""
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if "object" in kinds or "array" in kinds:
        return "JSON"
    if schema.get("format") == "date-time":
        return "TIMESTAMP"
    if schema.get("format") == "time":
        return "TIME"
    if "number" in kinds:
        return "DOUBLE"
    if "integer" in kinds and "string" not in kinds:
        return "HUGEINT"
    if "boolean" in kinds and "string" not in kinds:
        return "BOOLEAN"
    return "VARCHAR"


class Stream:
    """One stream's table: its columns (source name -> DuckDB type) and key properties."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, schema: str, message: dict[str, Any]):
        self.conn = conn
        self.name = message["stream"]
        self.table = f"{quote(schema)}.{quote(self.name.lower())}"
        properties = message["schema"].get("properties", {})
        self.columns = {
            name: column_type(prop) for name, prop in properties.items() if name not in METADATA_COLUMNS
        }
        self.keys = [key.lower() for key in message.get("key_properties") or []]
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        self._create_or_extend(schema)

    def _create_or_extend(self, schema: str) -> None:
        wanted = {name.lower(): kind for name, kind in self.columns.items()} | METADATA_COLUMNS
        existing = {
            row[0]
            for row in self.conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ?",
                [schema, self.name.lower()],
            ).fetchall()
        }
        if not existing:
            columns = [f"{quote(name)} {kind}" for name, kind in wanted.items()]
            if self.keys:
                columns.append(f"PRIMARY KEY ({', '.join(quote(k) for k in self.keys)})")
            self.conn.execute(f"CREATE TABLE {self.table} ({', '.join(columns)})")
            return
        for name, kind in wanted.items():
            if name not in existing:  # a column added to the source since the table was made
                self.conn.execute(f"ALTER TABLE {self.table} ADD COLUMN {quote(name)} {kind}")

    def load(self, paths: list[Path], file_format: str = "jsonl") -> int:
        """Load JSON Lines (gzipped or not) or Parquet files in one transaction; the rows loaded."""
        read_types = {name: "VARCHAR" if kind == "TIMESTAMP" else kind for name, kind in self.columns.items()}
        read_types[BATCHED_AT] = "VARCHAR"  # the tap's time, kept as _sdc_extracted_at
        spec = (
            "{"
            + ", ".join(f"'{n.replace(chr(39), chr(39) * 2)}': '{t}'" for n, t in read_types.items())
            + "}"
        )
        selects = [
            f"CAST({quote(name)} AS TIMESTAMP)" if kind == "TIMESTAMP" else quote(name)
            for name, kind in self.columns.items()
        ]
        targets = [quote(name.lower()) for name in self.columns]
        selects += [f"CAST({quote(BATCHED_AT)} AS TIMESTAMP)", "$stamp", "NULL"]
        targets += [quote(name) for name in METADATA_COLUMNS]
        reader = (
            "read_parquet($paths)"
            if file_format == "parquet"
            else f"read_json($paths, format = 'newline_delimited', columns = {spec})"
        )
        select = f"({', '.join(targets)}) SELECT {', '.join(selects)} FROM {reader}"
        # The load time is naive local time, as target-duckdb stamps it.
        parameters = {"paths": [str(path) for path in paths], "stamp": dt.datetime.now()}
        try:
            return self._insert(f"INSERT INTO {self.table} {select}", parameters)
        except duckdb.ConstraintException:
            if not self.keys:
                raise
        # Some rows are there already (lines sent again): replace them. Plain INSERT first because it is
        # about twice as fast, and a batch of new lines is the common case.
        return self._insert(f"INSERT OR REPLACE INTO {self.table} {select}", parameters)

    def _insert(self, statement: str, parameters: dict[str, Any]) -> int:
        self.conn.execute("BEGIN TRANSACTION")
        try:
            rows = self.conn.execute(statement, parameters).fetchone()
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return int(rows[0]) if rows else 0


class RecordBuffer:
    """RECORD messages of one stream, written to a local JSON Lines file until loaded."""

    def __init__(self, directory: str):
        self._file: IO[str] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in `take`
            "w", suffix=".jsonl", dir=directory, delete=False, encoding="utf-8"
        )
        self.rows = 0

    def write(self, message: dict[str, Any]) -> None:
        record = dict(message["record"])
        record[BATCHED_AT] = message.get("time_extracted")
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.rows += 1

    def take(self) -> Path:
        self._file.close()
        return Path(self._file.name)


MAX_FILES_PER_LOAD = 16  # so bookmarks still advance while a fast tap keeps the queue full


@dataclass
class PendingBatches:
    """Batch files of one stream waiting to load together, and the STATE messages that came after them."""

    stream: str
    format: str
    paths: list[Path] = field(default_factory=list)
    states: list[Any] = field(default_factory=list)

    def takes(self, message: dict[str, Any]) -> bool:
        """Whether `message` can wait with this group (a STATE, or another batch of the same stream)."""
        if message.get("type") == "STATE":
            return True
        return (
            message.get("type") == "BATCH"
            and message.get("stream") == self.stream
            and batch_format(message) == self.format
            and len(self.paths) < MAX_FILES_PER_LOAD
        )


def batch_format(message: dict[str, Any]) -> str:
    file_format = (message.get("encoding") or {}).get("format") or "jsonl"
    if file_format not in ("jsonl", "parquet"):
        raise ValueError(f"stream '{message['stream']}': batch format {file_format!r} is not supported")
    return file_format


def batch_path(stream: str, url: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"stream '{stream}': batch file {url} is not a local file (file://)")
    return Path(unquote(parsed.path))


def emit_state(value: Any) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


class Target:
    def __init__(self, config: dict[str, Any]):
        self.conn = duckdb.connect(config["filepath"])
        self.schema = config.get("default_target_schema") or "main"
        self.clean_up = bool(config.get("clean_up_batch_files", True))
        self.buffer_rows = int(config.get("batch_size_rows") or DEFAULT_BUFFER_ROWS)
        self.buffer_dir = tempfile.mkdtemp(prefix="target-duckdb-bulk-")
        self.streams: dict[str, Stream] = {}
        self.buffers: dict[str, RecordBuffer] = {}
        self.pending: PendingBatches | None = None

    def handle(self, line: str) -> None:
        message = json.loads(line)
        kind = message.get("type")
        if self.pending is not None and not self.pending.takes(message):
            self.load_pending()
        if kind == "SCHEMA":
            self.flush(message["stream"])
            self.streams[message["stream"]] = Stream(self.conn, self.schema, message)
        elif kind == "RECORD":
            buffer = self.buffers.get(message["stream"])
            if buffer is None:
                buffer = self.buffers[message["stream"]] = RecordBuffer(self.buffer_dir)
            buffer.write(message)
            if buffer.rows >= self.buffer_rows:
                self.flush(message["stream"])
        elif kind == "BATCH":
            for stream in list(self.buffers):  # records sent before the batch load before it
                self.flush(stream)
            if self.pending is None:
                self.pending = PendingBatches(message["stream"], batch_format(message))
            self.pending.paths += [batch_path(message["stream"], url) for url in message["manifest"]]
        elif kind == "STATE":
            if self.pending is not None:
                self.pending.states.append(message["value"])
                return
            for stream in list(self.buffers):
                self.flush(stream)
            emit_state(message["value"])

    def load_pending(self) -> None:
        """Load the waiting batch files in one transaction, then pass on the STATE messages that followed."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        stream = self._stream(pending.stream)
        rows = stream.load(pending.paths, pending.format)
        names = ", ".join(path.name for path in pending.paths)
        LOG.info(
            "Loaded batch of %d records of stream '%s' into %s (%s)",
            rows,
            pending.stream,
            stream.table,
            names,
        )
        if self.clean_up:
            for path in pending.paths:
                path.unlink(missing_ok=True)
        for state in pending.states:
            emit_state(state)

    def flush(self, stream: str) -> None:
        buffer = self.buffers.pop(stream, None)
        if buffer is None:
            return
        path = buffer.take()
        try:
            rows = self._stream(stream).load([path])
            LOG.info("Loaded %d records of stream '%s' into %s", rows, stream, self._stream(stream).table)
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        self.load_pending()
        for stream in list(self.buffers):
            self.flush(stream)
        self.conn.close()
        Path(self.buffer_dir).rmdir()

    def _stream(self, stream: str) -> Stream:
        if stream not in self.streams:
            raise ValueError(f"stream '{stream}': data before its SCHEMA message")
        return self.streams[stream]


def main() -> None:
    parser = argparse.ArgumentParser(prog="target-duckdb-bulk")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    target = Target(json.loads(args.config.read_text()))
    lines: queue.Queue[str | BaseException | None] = queue.Queue(maxsize=10_000)  # bounded: back-pressure
    threading.Thread(target=read_input, args=(lines,), daemon=True).start()
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:  # nothing more waiting: load the batches that queued up, then wait
            target.load_pending()
            line = lines.get()
        if isinstance(line, BaseException):
            raise line
        if line is None:
            break
        if line.strip():
            target.handle(line)
    target.close()


def read_input(lines: queue.Queue[str | BaseException | None]) -> None:
    """stdin's lines into `lines` as they come (so the loader sees what is waiting already), then None."""
    try:
        for line in sys.stdin:
            lines.put(line)
    except BaseException as error:  # e.g. undecodable input: the main thread raises it
        lines.put(error)
        return
    lines.put(None)


if __name__ == "__main__":
    main()
