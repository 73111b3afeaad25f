"""Batch files of validated landing records: gzipped JSON Lines, the Singer SDK's `jsonl` BATCH encoding.

A file is written under a dot-name and renamed when complete, so a loader never sees half a batch. Each
record also carries `_sdc_batched_at` (when its batch was made): loaders that copy batch files as they are
(target-snowflake's stage + COPY/MERGE) stamp no row themselves, and the platform's reconciliation counts
rows by that stamp. Compression level 1: batch files live for one run, so speed beats size.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import uuid
from pathlib import Path
from typing import Any

import orjson

DEFAULT_BATCH_SIZE_ROWS = 200_000
BATCHED_AT = "_sdc_batched_at"
# Records reach gzip through one reused 1 MiB buffer: bounded memory, few calls into zlib. (Joining lists of
# serialized records instead churned the heap: about one page fault per record, 2 s of system time per 1M.)
_BUFFER_BYTES = 1024 * 1024


def clear_leftovers(directory: Path) -> None:
    """Delete a stream's batch files left by an earlier run that was killed (a half-written file, or one
    written but never loaded). Safe at the start of a run: Meltano runs one pipeline per state id at a
    time, and whatever such a file held is extracted again because its bookmark was never saved."""
    if directory.is_dir():
        for leftover in directory.iterdir():
            leftover.unlink(missing_ok=True)


class BatchFile:
    """One batch being written; `last_lines` holds, per landing file, the last line it holds."""

    def __init__(self, directory: Path, stream: str):
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{stream}-{uuid.uuid4().hex}.jsonl.gz"
        self.path = directory / name
        self._partial = directory / f".{name}"
        compressed = gzip.open(self._partial, "wb", compresslevel=1)  # noqa: SIM115 - closed with _out
        self._out = io.BufferedWriter(compressed, buffer_size=_BUFFER_BYTES)  # type: ignore[arg-type]
        self._batched_at = dt.datetime.now(dt.UTC).isoformat()
        self.rows = 0
        self.last_lines: dict[str, int] = {}

    def write(self, record: dict[str, Any]) -> None:
        record[BATCHED_AT] = self._batched_at
        self._out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))  # ~10x json.dumps
        self.last_lines[record["_source_file"]] = record["_source_line"]
        self.rows += 1

    def close(self) -> str:
        """Finish the file; its URL for the BATCH message's manifest."""
        self._out.close()
        self._partial.rename(self.path)
        return self.path.resolve().as_uri()

    def discard(self) -> None:
        self._out.close()
        self._partial.unlink(missing_ok=True)
