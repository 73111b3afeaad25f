"""Batch files of validated landing records: gzipped JSON Lines, the Singer SDK's `jsonl` BATCH encoding.

A file is written under a dot-name and renamed when complete, so a loader never sees half a batch. Each
record also carries `_sdc_batched_at` (when its batch was made): loaders that copy batch files as they are
(target-snowflake's stage + COPY/MERGE) stamp no row themselves, and the platform's reconciliation counts
rows by that stamp. Compression level 1: batch files live for one run, so speed beats size.
"""

from __future__ import annotations

import datetime as dt
import gzip
import uuid
from pathlib import Path
from typing import Any

import orjson

DEFAULT_BATCH_SIZE_ROWS = 200_000
BATCHED_AT = "_sdc_batched_at"
_FLUSH_EVERY = 5_000  # records serialized per write: bounded memory, few calls into gzip


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
        self._gzip = gzip.open(self._partial, "wb", compresslevel=1)  # noqa: SIM115 - closed in close()/discard()
        self._pending: list[bytes] = []
        self._batched_at = dt.datetime.now(dt.UTC).isoformat()
        self.rows = 0
        self.last_lines: dict[str, int] = {}

    def write(self, record: dict[str, Any]) -> None:
        record[BATCHED_AT] = self._batched_at
        self._pending.append(orjson.dumps(record))  # several times faster than json.dumps
        self.last_lines[record["_source_file"]] = record["_source_line"]
        self.rows += 1
        if len(self._pending) >= _FLUSH_EVERY:
            self._flush()

    def close(self) -> str:
        """Finish the file; its URL for the BATCH message's manifest."""
        self._flush()
        self._gzip.close()
        self._partial.rename(self.path)
        return self.path.resolve().as_uri()

    def discard(self) -> None:
        self._gzip.close()
        self._partial.unlink(missing_ok=True)

    def _flush(self) -> None:
        if self._pending:
            self._gzip.write(b"\n".join(self._pending) + b"\n")
            self._pending.clear()
