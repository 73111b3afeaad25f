"""A Meltano project of its own for hostile landing files: tap-landing streams the sample does not have.

`hostile_project(tmp_path, streams)` writes meltano.yml (the platform's, with tap-landing's streams
replaced) and sources.yaml (source `drops`), and links the platform's installed plugin venvs into it, so
runs use the real meltano, tap-landing and target-duckdb without installing anything again.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from platform_assets import environment
from platform_assets.components.meltano import ingestion_definitions
from platform_assets.resources import warehouse_resource
from platform_assets.warehouse import connect_duckdb

SOURCE = "drops"
PLUGINS = (("extractors", "tap-landing"), ("loaders", "target-duckdb"), ("loaders", "target-duckdb-bulk"))
BULK_LOADER = "target-duckdb-bulk"


def hostile_project(
    root: Path, streams: dict[str, dict], bulk: dict[str, str] | None = None, settings: dict | None = None
) -> tuple[Path, Path]:
    """(meltano project dir, sources.yaml) declaring `streams` (name -> tap-landing stream definition);
    `settings` are the source's tap-landing settings (default: the landing folder).

    Record mode into target-duckdb by default; `bulk` (extra tap-landing settings, e.g. batch_size_rows)
    runs bulk mode instead: batch files into target-duckdb-bulk.
    """
    project = yaml.safe_load((environment.MELTANO_PROJECT_DIR / "meltano.yml").read_text())
    [tap] = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-landing"]
    tap["config"]["streams"] = [{"name": name, **definition} for name, definition in streams.items()]
    # The installed venvs' pip_url, expanded as it was at install: Meltano then sees them installed as is.
    for plugin in [tap, *project["plugins"]["loaders"]]:
        plugin["pip_url"] = plugin["pip_url"].replace(
            "${MELTANO_PROJECT_ROOT}", str(environment.MELTANO_PROJECT_DIR)
        )
    project_dir = root / "meltano"
    project_dir.mkdir(parents=True)
    (project_dir / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    for plugin_type, name in PLUGINS:
        link = project_dir / ".meltano" / plugin_type / name / "venv"
        link.parent.mkdir(parents=True)
        link.symlink_to(environment.MELTANO_PROJECT_DIR / ".meltano" / plugin_type / name / "venv")
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
