"""A scratch Meltano project for tests and benchmarks: the platform's meltano.yml with tap-landing's streams
replaced, and the platform's installed plugin venvs linked in, so runs use the real meltano, tap-landing and
loaders without installing anything again."""

from __future__ import annotations

from pathlib import Path

import yaml

from platform_assets import environment

LANDING_PLUGINS = (
    ("extractors", "tap-landing"),
    ("loaders", "target-duckdb"),
    ("loaders", "target-duckdb-bulk"),
)


def landing_project(project_dir: Path, streams: list[dict]) -> Path:
    """Write `project_dir`/meltano.yml declaring `streams` (tap-landing stream definitions), venvs linked."""
    project = yaml.safe_load((environment.MELTANO_PROJECT_DIR / "meltano.yml").read_text())
    [tap] = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-landing"]
    tap["config"]["streams"] = streams
    # The installed venvs' pip_url, expanded as it was at install: Meltano then sees them installed as is.
    for plugin in [tap, *project["plugins"]["loaders"]]:
        plugin["pip_url"] = plugin["pip_url"].replace(
            "${MELTANO_PROJECT_ROOT}", str(environment.MELTANO_PROJECT_DIR)
        )
    project_dir.mkdir(parents=True)
    (project_dir / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    for plugin_type, name in LANDING_PLUGINS:
        link = project_dir / ".meltano" / plugin_type / name / "venv"
        link.parent.mkdir(parents=True)
        link.symlink_to(environment.MELTANO_PROJECT_DIR / ".meltano" / plugin_type / name / "venv")
    return project_dir
