"""A Meltano project of its own for hostile landing files: tap-landing streams the sample does not have.

`hostile_project(tmp_path, streams)` writes meltano.yml (the platform's, with tap-landing's streams
replaced) and sources.yaml (source `drops`), and links the platform's installed plugin venvs into it, so
runs use the real meltano, tap-landing and target-duckdb without installing anything again.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dagster as dg
import yaml

from local_stack.meltano_scratch import landing_project
from platform_assets import environment
from platform_assets.components.meltano import ingestion_definitions
from platform_assets.resources import warehouse_resource
from platform_assets.warehouse import connect_duckdb

SOURCE = "drops"
BULK_LOADER = "target-duckdb-bulk"


def hostile_project(
    root: Path, streams: dict[str, dict], bulk: dict[str, str] | None = None, settings: dict | None = None
) -> tuple[Path, Path]:
    """(meltano project dir, sources.yaml) declaring `streams` (name -> tap-landing stream definition);
    `settings` are the source's tap-landing settings (default: the landing folder).

    Record mode into target-duckdb by default; `bulk` (extra tap-landing settings, e.g. batch_size_rows)
    runs bulk mode instead: batch files into target-duckdb-bulk.
    """
    project_dir = landing_project(
        root / "meltano", [{"name": name, **definition} for name, definition in streams.items()]
    )
    source = {
        "extractor": "tap-landing",
        "description": "Hostile file drops.",
        "owners": ["team:data-platform"],
        "settings": dict(settings or {"root": "{landing_dir}"}),
        "streams": {name: {"description": f"Case {name}."} for name in streams},
    }
    if bulk is not None:
        source["loader"] = BULK_LOADER
        source["settings"] |= {"batch_dir": "{local_dir}/meltano/batches", **bulk}
    sources = {
        "loader_settings": {
            "target-duckdb": {"filepath": "{duckdb_path}"},
            BULK_LOADER: {"filepath": "{duckdb_path}"},
        },
        "sources": {SOURCE: source},
    }
    sources_file = root / "sources.yaml"
    sources_file.write_text(yaml.safe_dump(sources, sort_keys=False))
    return project_dir, sources_file


def materialize(project_dir: Path, sources_file: Path) -> dg.ExecuteInProcessResult:
    defs = ingestion_definitions(sources_file, project_dir)
    resources = {**(defs.resources or {}), "warehouse": warehouse_resource()}
    return dg.materialize(list(defs.assets or []), resources=resources, raise_on_error=False)


def raw_lines(stream: str) -> list[tuple[str, int]]:
    """(_source_file, _source_line) of every row in raw_drops.<stream>, duplicates included, sorted."""
    connection = connect_duckdb(environment.current().duckdb_path, read_only=True)
    try:
        exists = connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            [f"raw_{SOURCE}", stream],
        ).fetchone()[0]
        if not exists:
            return []
        return connection.execute(
            f"SELECT _source_file, _source_line FROM raw_{SOURCE}.{stream} ORDER BY 1, 2"
        ).fetchall()
    finally:
        connection.close()


def run_tap_landing(
    project: Path, tmp_path: Path, config: dict, state: dict | None = None
) -> subprocess.CompletedProcess:
    """tap-landing run directly (no Meltano) from the project's venv with `config`, and `state` if given."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    command = [
        str(project / ".meltano/extractors/tap-landing/venv/bin/tap-landing"),
        "--config",
        str(tmp_path / "config.json"),
    ]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        command += ["--state", str(tmp_path / "state.json")]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
