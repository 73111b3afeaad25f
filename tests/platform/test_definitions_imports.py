"""The definitions load (paid again by every run process) builds exactly what `dg.load_from_defs_folder`
builds, without importing the packages that only register component types (dagster-snowflake and its
Snowpark: most of a load). Runs in a fresh interpreter, so other tests' imports do not count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
from pathlib import Path
import dagster as dg
import platform_assets
from platform_assets.definitions import load_declarations

package = Path(platform_assets.__file__).parent

def shape(defs):
    repo = defs.get_repository_def()
    return {
        "assets": sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()),
        "checks": sorted(str(k) for k in repo.asset_graph.asset_check_keys),
        "jobs": sorted(j.name for j in repo.get_all_jobs()),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "schedules": sorted(s.name for s in repo.schedule_defs),
        "resources": sorted(repo.get_top_level_resources()),
    }

ours = shape(dg.Definitions.merge(load_declarations(package), dg.Definitions(resources={"warehouse": 1})))
imported = "dagster_snowflake" in sys.modules
theirs = shape(dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=package), dg.Definitions(resources={"warehouse": 1})
))
print(json.dumps({"imported": imported, "same": ours == theirs, "ours": ours, "theirs": theirs}))
"""


@pytest.mark.integration
def test_definitions_load_skips_component_type_catalogues_and_builds_the_same(tmp_path) -> None:
    env = {**os.environ, "PLATFORM_LOCAL_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["imported"] is False, "the definitions load imported dagster_snowflake"
    assert result["ours"]["assets"] and result["ours"]["sensors"]
    assert result["same"], (result["ours"], result["theirs"])
