"""tap-landing: one Singer stream per landing folder, incremental per file by line.

State: one bookmark per file (a Singer SDK state partition `{"file": "<stream>/<name>"}`) holding the
last line emitted (`_source_line`), so an appended row emits exactly one record and an unchanged folder
emits none. A malformed line fails its stream with the file and line; the other streams still sync, the
records before the bad line keep their bookmark, and the tap exits non-zero naming every failed stream.
Whatever goes wrong reading a file fails its stream this way, never the process: a tap that died mid-file
would leave records the target loads after the last STATE message, which a re-run would load again.
Key properties are the lineage columns (`_source_file`, `_source_line`): a line identifies a record, since
landing files only grow. A loader that committed a batch but was killed before Meltano saved the matching
STATE gets those lines again on the next run; keyed, the target upserts them instead of adding copies, so
raw holds each landed line exactly once. The business `primary_keys` only document the grain: a key
changed in a later drop is a new line (raw keeps every version; staging keeps the latest).

Bulk mode (setting `batch_dir`): the same validated records go to batch files (`batch_format` jsonl or
parquet) of at most `batch_size_rows` records (tap_landing.batches) announced by Singer BATCH messages instead
of one RECORD message per row; the loader reads each file with its own bulk reader. Files are read a chunk
at a time into Arrow tables where the chunk certainly reads as the line reader would (tap_landing.columnar),
line by line from the first chunk that does not, so results and errors are the line reader's. A STATE
message follows each BATCH message and holds, per file, the last line in that batch, so bookmarks advance
only with loaded batches. Without `batch_dir` the tap sends RECORD messages (for a loader that does not
read BATCH).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig  # the SDK exports them only here

from tap_landing.batches import (
    BATCH_FORMATS,
    DEFAULT_BATCH_SIZE_ROWS,
    SOURCE_FILE,
    SOURCE_LINE,
    BatchFile,
    arrow_schema,
    clear_leftovers,
)
from tap_landing.columnar import ARROW_TYPES, ChunkReader
from tap_landing.parsing import (
    COLUMN_TYPES,
    COMPRESSED_SUFFIX,
    FORMATS,
    MAX_RECORD_BYTES,
    READERS,
    LandingDataError,
    LandingFile,
    json_schema_for,
)
from tap_landing.storage import LandingStorage

FAILED_STREAM_PREFIX = "tap-landing stream failed:"
WAITING_PREFIX = "tap-landing line waiting:"


class LandingStream(Stream):
    """Every file in `<root>/<name>/` with the stream's extension (optionally `.gz`), in name order."""

    replication_key = SOURCE_LINE
    is_sorted = True  # lines only grow within a file (the partition), so bookmarks advance per record
    state_partitioning_keys = ("file",)

    def __init__(self, tap: TapLanding, definition: dict[str, Any]):
        self.definition = definition
        self.format: str = definition["format"]
        self.columns: dict[str, str] = dict(definition["columns"])
        properties = {name: json_schema_for(kind) for name, kind in self.columns.items()}
        properties[SOURCE_FILE] = {"type": ["string"]}
        properties[SOURCE_LINE] = {"type": ["integer"]}
        schema = {"type": "object", "properties": properties}
        super().__init__(tap=tap, schema=schema, name=definition["name"])
        self.primary_keys = [SOURCE_FILE, SOURCE_LINE]  # re-sent lines are upserts, not copies (module doc)
        self.failure: LandingDataError | None = None

    @property
    def storage(self) -> LandingStorage:
        return self._tap.storage  # type: ignore[attr-defined]

    @property
    def partitions(self) -> list[dict] | None:
        entries = self.storage.files(self.name)
        if entries is None:
            folder = self.storage.shown(self.storage.folder(self.name))
            self.logger.warning("No folder %s yet: nothing to read for stream '%s'.", folder, self.name)
            return []
        files = []
        for entry in entries:
            if not entry.name.endswith((f".{self.format}", f".{self.format}{COMPRESSED_SUFFIX}")):
                reason = f"this stream reads only .{self.format} (or .{self.format}.gz) files; move it"
                self._fail(LandingDataError(entry.shown, None, reason))
                return []
            files.append({"file": f"{self.name}/{entry.name}"})
        return files

    def get_records(self, context: dict | None) -> Iterable[dict[str, Any]]:
        if self.failure is not None or context is None:
            return  # a stream stops at its first malformed line, whatever file comes next
        yield from self._records(context["file"], int(self.get_starting_replication_key_value(context) or 0))

    def _pieces(self, context: dict) -> Iterable[tuple[int, pa.Table] | dict[str, Any]]:
        """Bulk mode: (first line, table) per chunk the fast reader takes, then the rest record by record."""
        if self.failure is not None:
            return
        relative = context["file"]
        reader = ChunkReader(self._file(relative), self.format, self.columns)
        yield from reader.tables(int(self.get_starting_replication_key_value(context) or 0))
        if not reader.complete:
            self.logger.info("%s: read line by line after line %d (%s)", relative, reader.line, reader.why)
            yield from self._records(relative, reader.line)

    def _file(self, relative: str) -> LandingFile:
        path = f"{self.storage.root.rstrip('/')}/{relative}"
        return LandingFile(self.storage.shown(path), self.max_record_bytes, self.storage.opener(path))

    def _records(self, relative: str, after_line: int) -> Iterable[dict[str, Any]]:
        """The file's records after `after_line`, read line by line (parsing.py)."""
        file = self._file(relative)
        try:
            for line, record in READERS[self.format](file, self.columns, after_line):
                record[SOURCE_FILE] = relative
                record[SOURCE_LINE] = line
                yield record
        except LandingDataError as error:
            self._fail(error)
        except Exception as error:  # any failure must end the stream cleanly (see the module doc)
            self._fail(file.error(f"could not be read ({type(error).__name__}: {error})", file.line + 1))
        else:
            if file.waiting:
                self.logger.warning("%s stream=%s %s: %s", WAITING_PREFIX, self.name, file.path, file.waiting)

    def get_batch_config(self, config: Any) -> BatchConfig | None:
        """Bulk mode where `batch_dir` is set (see the module doc); None sends RECORD messages."""
        if not config.get("batch_dir"):
            return None
        file_format = config.get("batch_format") or "jsonl"
        compression = "gzip" if file_format == "jsonl" else "snappy"
        return BatchConfig.from_dict(
            {
                "encoding": {"format": file_format, "compression": compression},
                "storage": {"root": Path(config["batch_dir"]).resolve().as_uri()},
                "batch_size": int(config.get("batch_size_rows") or DEFAULT_BATCH_SIZE_ROWS),
            }
        )

    def get_batches(
        self, batch_config: BatchConfig, context: dict | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """Validated records in batch files; the SDK sends each as a BATCH message, then the STATE.

        A batch may span files. The bookmarks of the files in a batch move to its last lines only when the
        batch is handed over, so the STATE after a BATCH message covers exactly the lines loaded with it.
        A malformed line ends the stream after the batch holding the lines before it.
        """
        directory = Path(self.config["batch_dir"]).resolve() / self.name  # one folder per stream
        clear_leftovers(directory)
        schema = arrow_schema({name: ARROW_TYPES[kind] for name, kind in self.columns.items()})

        def new_batch() -> BatchFile:
            return BatchFile(directory, self.name, batch_config.encoding.format, schema)

        batch = new_batch()
        for partition in [context] if context else self.partitions or []:
            self._write_starting_replication_value(partition)
            for piece in self._pieces(partition):
                if isinstance(piece, dict):
                    batch.write(piece)
                    if batch.rows >= batch_config.batch_size:
                        yield self._hand_over(batch, batch_config)
                        batch = new_batch()
                    continue
                first_line, table = piece
                while table.num_rows:  # a batch holds at most batch_size records: a table may straddle two
                    taken = table.slice(0, batch_config.batch_size - batch.rows)
                    batch.write_table(partition["file"], first_line, taken)
                    first_line, table = first_line + taken.num_rows, table.slice(taken.num_rows)
                    if batch.rows >= batch_config.batch_size:
                        yield self._hand_over(batch, batch_config)
                        batch = new_batch()
            self._finalize_state(self.get_context_state(partition))
        if batch.rows:
            yield self._hand_over(batch, batch_config)
        else:
            batch.discard()

    def _hand_over(self, batch: BatchFile, config: BatchConfig) -> tuple[BaseBatchFileEncoding, list[str]]:
        url = batch.close()
        for relative, line in batch.last_lines.items():
            # The bookmark itself, not the SDK's progress marker: the SDK treats partitioned state as unsorted
            # and resumes from a marker only after the stream ended, but a file's lines are sorted, so the
            # STATE after this BATCH is resumable as it is (a run killed later resumes after this batch).
            state = self.get_context_state({"file": relative})
            state["replication_key"] = SOURCE_LINE
            state["replication_key_value"] = line
        with self.get_record_counter() as counter:  # Meltano's record_count: what reconciliation compares
            counter.increment(batch.rows)
        return config.encoding, [url]

    @property
    def max_record_bytes(self) -> int:
        return int(self.definition.get("max_record_bytes") or MAX_RECORD_BYTES)

    def _fail(self, error: LandingDataError) -> None:
        self.failure = error
        self.logger.error("%s stream=%s %s", FAILED_STREAM_PREFIX, self.name, error)


class TapLanding(Tap):
    """Singer tap for the platform's landing folder or object-store prefix."""

    name = "tap-landing"
    config_jsonschema = th.PropertiesList(
        th.Property(
            "root",
            th.StringType,
            required=True,
            description="The landing folder, or an object-store prefix (s3://bucket/prefix).",
        ),
        th.Property(
            "endpoint_url",
            th.StringType,
            description="S3 endpoint of an S3-compatible server (e.g. the local one); unset: AWS.",
        ),
        th.Property(
            "aws_access_key_id",
            th.StringType,
            secret=True,
            description="Unset: the AWS credential chain (AWS_* environment variables, profile, role).",
        ),
        th.Property("aws_secret_access_key", th.StringType, secret=True),
        th.Property(
            "streams",
            th.ArrayType(
                th.ObjectType(
                    th.Property("name", th.StringType, required=True),
                    th.Property("format", th.StringType, required=True, allowed_values=list(FORMATS)),
                    th.Property("primary_keys", th.ArrayType(th.StringType)),
                    th.Property("description", th.StringType),
                    th.Property("columns", th.ObjectType(additional_properties=th.StringType), required=True),
                    th.Property(
                        "max_record_bytes",
                        th.IntegerType,
                        description=f"Longest record accepted, in bytes (default {MAX_RECORD_BYTES:,}).",
                    ),
                )
            ),
            required=True,
            description="One entry per landing folder: name, format (csv|jsonl), primary_keys, columns.",
        ),
        th.Property(
            "batch_dir",
            th.StringType,
            description="Bulk mode: write records to batch files in this folder and send BATCH messages "
            "(the loader must read Singer BATCH files). Unset: one RECORD message per record.",
        ),
        th.Property(
            "batch_format",
            th.StringType,
            allowed_values=list(BATCH_FORMATS),
            description="Bulk mode's batch files: jsonl (gzipped; every BATCH loader reads it, the default) "
            "or parquet (faster; the loader must read Parquet batches, as target-duckdb-bulk does).",
        ),
        th.Property(
            "batch_size_rows",
            th.IntegerType,
            description=f"Records per batch file in bulk mode (default {DEFAULT_BATCH_SIZE_ROWS:,}).",
        ),
    ).to_dict()

    @cached_property
    def storage(self) -> LandingStorage:
        options = {
            "endpoint_url": self.config.get("endpoint_url"),
            "key": self.config.get("aws_access_key_id"),
            "secret": self.config.get("aws_secret_access_key"),
        }
        root = self.config["root"]
        return LandingStorage(root, options if "://" in root else None)

    def discover_streams(self) -> list[Stream]:
        streams = []
        for definition in self.config["streams"]:
            bad = {col: kind for col, kind in definition["columns"].items() if kind not in COLUMN_TYPES}
            if bad:
                raise ValueError(
                    f"tap-landing stream '{definition['name']}': unknown column types {bad}; "
                    f"use one of {', '.join(COLUMN_TYPES)}"
                )
            streams.append(LandingStream(self, definition))
        return streams

    def sync_all(self) -> None:
        super().sync_all()
        failed = [s for s in self.streams.values() if isinstance(s, LandingStream) and s.failure is not None]
        if failed:
            details = "; ".join(f"stream '{s.name}': {s.failure}" for s in failed)
            raise LandingDataError(self.config["root"], None, f"{len(failed)} stream(s) failed: {details}")


if __name__ == "__main__":
    TapLanding.cli()
