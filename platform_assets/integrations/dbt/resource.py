"""The `dbt` resource: dagster-dbt's CLI resource, run with the platform environment."""

import filecmp
import importlib.metadata
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource
from packaging import version


class PlatformDbtCliResource(DbtCliResource):
    """dbt CLI with the platform environment: target, DuckDB path and schema prefix.

    profiles.yml and generate_schema_name read PLATFORM_DUCKDB_PATH and PLATFORM_SCHEMA_PREFIX; dagster-dbt
    hands dbt this process's environment, so they are exported for the duration of each invocation's start
    (the dbt subprocess and dagster-dbt's in-process adapter both read them then).
    """

    duckdb_path: str | None = None
    schema_prefix: str = ""

    # dagster-dbt (0.29) starts every process's first `cli` call, i.e. every dbt step of every run, by
    # asking the executable for its version (`dbt --version`: one more Python start with dbt's imports)
    # and by building an in-process dbt adapter (dbt's imports, every macro loaded): seconds per run
    # (docs/performance.md). The adapter only serves `fetch_column_metadata` / `fetch_row_counts`, which the
    # platform does not call, and the executable beside this interpreter is the dbt-core installed here.
    # Both are private hooks: dagster-dbt has no setting for either.
    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == Path(sys.executable).parent / "dbt":
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None

    def cli(self, args: Sequence[str], **kwargs: Any):  # type: ignore[override]
        if self.duckdb_path:  # DuckDB creates the file, not its folder: a fresh local dir starts empty
            Path(self.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
        with _exported(
            {"PLATFORM_DUCKDB_PATH": self.duckdb_path, "PLATFORM_SCHEMA_PREFIX": self.schema_prefix}
        ):
            return super().cli(args, **kwargs)


@contextmanager
def _exported(variables: Mapping[str, str | None]) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in variables}
    try:
        for name, value in variables.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dbt_executable() -> str:
    """dbt from this interpreter's environment (the venv need not be on PATH), else from PATH."""
    beside_python = Path(sys.executable).parent / "dbt"
    return os.fspath(beside_python) if beside_python.exists() else "dbt"


PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def keep_partial_parse(invocation_target: Path, project_target: Path) -> None:
    """Make an invocation's parse state the one the next invocation starts from.

    dagster-dbt runs every invocation in a target folder of its own, seeded with the project's
    partial_parse.msgpack. dbt throws that away and parses the whole project when it was written for another
    profile (e.g. another DuckDB path: set-up parsed for one PLATFORM_LOCAL_DIR, runs use another), and its
    fresh one stayed in the invocation's folder, so every later run parsed everything again (seconds per
    run). Copied back atomically (runs read it concurrently), the next invocation parses only what changed.
    A read-only project (an image) keeps its file: the copy is an optimisation, never a failure.
    """
    fresh = invocation_target / PARTIAL_PARSE_FILE
    kept = project_target / PARTIAL_PARSE_FILE
    if not fresh.is_file() or (kept.is_file() and filecmp.cmp(fresh, kept, shallow=False)):
        return
    staged = kept.with_name(f".{PARTIAL_PARSE_FILE}.{os.getpid()}")
    try:
        shutil.copyfile(fresh, staged)
        os.replace(staged, kept)
    except OSError:
        staged.unlink(missing_ok=True)
