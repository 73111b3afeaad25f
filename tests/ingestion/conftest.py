"""Ingestion fixtures: the Meltano plugins installed once per session, small landing folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from platform_assets import environment

PLUGINS = (("extractor", "tap-landing"), ("loader", "target-duckdb"), ("loader", "target-duckdb-bulk"))


def meltano_install(project_root: Path, plugins: tuple[tuple[str, str], ...]) -> None:
    """`meltano install` (fast when already installed: uv checks the venvs)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env.pop("MELTANO_SYS_DIR_ROOT", None)
    for plugin_type, name in plugins:
        completed = subprocess.run(
            ["meltano", "install", plugin_type, name],
            cwd=project_root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0, f"meltano install {name} failed:\n{completed.stderr[-3000:]}"


@pytest.fixture(scope="session")
def meltano_installer():
    """`meltano_install(project_root, plugins)`, for tests that build their own Meltano project."""
    return meltano_install


@pytest.fixture(scope="session")
def meltano_plugins() -> Path:
    """The project's tap-landing, target-duckdb and target-duckdb-bulk, installed once for the session."""
    meltano_install(environment.MELTANO_PROJECT_DIR, PLUGINS)
    return environment.MELTANO_PROJECT_DIR
