"""The local Dagster instance's event log storage: Dagster's SQLite storage, with pool slots claimed and
released one process at a time.

Dagster claims a pool slot in several separate statements (count the free slots, queue the step as
assigned, take a slot row with an unguarded UPDATE); SQLite ignores `FOR UPDATE`, so two processes that
claim at the same moment can both get the single `warehouse` slot (seen in a test: two runs' warehouse
steps started 1.4 ms apart). DuckDB allows one writer process per file, so locally that would be two
writers. An exclusive lock on a file beside the instance's event logs closes the window; each claim or
release holds it for a few milliseconds.

deploy/local/dagster.yaml selects this class; production uses PostgreSQL storage.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster import StringSource

# The one use of Dagster's private modules in product code: instance storage is extended by subclassing
# (dagster.yaml names `module` and `class`), and Dagster exports neither its SQLite event log storage nor
# ConfigurableClassData publicly. tests/production/test_instance_configs.py runs the race this closes.
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData


class PoolSafeSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage at `<instance_dir>/history/runs` (where `storage: sqlite` keeps it)."""

    def __init__(self, instance_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(os.path.join(instance_dir, "history", "runs"), inst_data=inst_data)
        self._lock_path = os.path.join(self._base_dir, ".pool-slots.lock")

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"instance_dir": StringSource}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> PoolSafeSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _pool_slots_locked(self) -> Iterator[None]:
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed, even on a crash
            yield

    def initialize_concurrency_limit_to_default(self, concurrency_key: str) -> bool:
        with self._pool_slots_locked():  # counts slot rows, then adds the missing ones
            return super().initialize_concurrency_limit_to_default(concurrency_key)

    def claim_concurrency_slot(self, concurrency_key: str, run_id: str, step_key: str, priority=None):
        with self._pool_slots_locked():
            return super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)

    def free_concurrency_slots_for_run(self, run_id: str) -> None:
        with self._pool_slots_locked():
            super().free_concurrency_slots_for_run(run_id)

    def free_concurrency_slot_for_step(self, run_id: str, step_key: str) -> None:
        with self._pool_slots_locked():
            super().free_concurrency_slot_for_step(run_id, step_key)
