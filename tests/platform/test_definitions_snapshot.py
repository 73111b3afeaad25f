"""Snapshot of the resolved definitions in local, ci and prod: what every asset, check, job, schedule,
sensor and resource resolves to once defs/ and the automation policy are applied.

A change anywhere that alters a resolved definition (a YAML override such as `select: "key:salesforce/*"`,
a sync's `automation:`, a dbt model's tags, a renamed job) shows as a diff of
tests/platform/__snapshots__/test_definitions_snapshot.ambr. When the change is intended, update it with:

    .venv/bin/pytest tests/platform/test_definitions_snapshot.py --snapshot-update

and review the snapshot's diff with the change (after a dbt change, prepare the local manifest first:
`python3 tasks.py setup`). The rendering is plain sorted data: no absolute paths,
no dbt checksums (a code version that is a digest shows as `<digest>`), no metadata.

Local loads in this process from the repository (its manifest is DuckDB's); ci and prod load in a
subprocess from the production build (`prod_build`: a copy of the project with the manifest prepared for
Snowflake), with placeholder settings, as the image runs. None of them sets PLATFORM_APP_DB_URL, so the
application database's source and models (present only where it is set) are not part of the snapshots.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from platform_assets import environment
from platform_assets.automation import apply_platform_policy
from platform_assets.automation.policy import policy_settings_from
from platform_assets.definitions import defs as platform_defs

ENVIRONMENTS = ("local", "ci", "prod")
CI_BRANCH = "snapshot"
_DIGEST = re.compile(r"[0-9a-f]{32,64}")


# ---------------------------------------------------------------------------------------------- rendering
def _key(key: dg.AssetKey) -> str:
    return key.to_user_string()


def _condition(condition: dg.AutomationCondition | None) -> str | None:
    """The condition's label; an unlabelled one as its operator tree of labels (deterministic)."""
    if condition is None:
        return None
    label = condition.get_label()
    if label:
        return label
    return f"{condition.name}({', '.join(_condition(child) or '' for child in condition.children)})"


def _window(value: Any) -> str | None:
    if value is None:
        return None
    delta = value.to_timedelta() if hasattr(value, "to_timedelta") else value
    assert isinstance(delta, timedelta), value
    return str(delta)


def _freshness(policy: Any) -> str | None:
    if policy is None:
        return None
    if isinstance(policy, dg.FreshnessPolicy) and hasattr(policy, "fail_window"):
        return f"time_window(fail={_window(policy.fail_window)}, warn={_window(policy.warn_window)})"
    if hasattr(policy, "deadline_cron"):
        return (
            f"cron(deadline={policy.deadline_cron}, timezone={policy.timezone}, "
            f"lower_bound={_window(policy.serializable_lower_bound_delta)})"
        )
    return repr(policy)  # a kind this rendering does not know yet: visible, not hidden


def _code_version(version: str | None) -> str | None:
    return "<digest>" if version and _DIGEST.fullmatch(version) else version


def _job_assets(job: dg.JobDefinition) -> list[str]:
    return sorted(_key(key) for key in job.asset_layer.selected_asset_keys)


def render(defs: dg.Definitions) -> dict[str, Any]:
    """The resolved definitions as plain sorted data (strings, numbers, lists and dicts)."""
    repo = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=_key):
        node = graph.get(key)
        assets[_key(key)] = {
            "deps": sorted(_key(parent) for parent in node.parent_keys),
            "group": node.group_name,
            "owners": sorted(node.owners),
            "kinds": sorted(node.kinds),
            "tags": {k: v for k, v in sorted(node.tags.items()) if not k.startswith("dagster/kind/")},
            "automation_condition": _condition(node.automation_condition),
            "freshness_policy": _freshness(node.freshness_policy),
            "pools": sorted(node.pools or ()),
            "code_version": _code_version(node.code_version),
            "materializable": node.is_materializable,
        }
        if node.legacy_freshness_policy is not None:  # the platform sets the new FreshnessPolicy only
            assets[_key(key)]["legacy_freshness_policy"] = _freshness(node.legacy_freshness_policy)
    checks = {
        f"{_key(check_key.asset_key)}:{check_key.name}": (
            "blocking" if graph.get_check_spec(check_key).blocking else "non-blocking"
        )
        for check_key in sorted(graph.asset_check_keys, key=lambda k: (_key(k.asset_key), k.name))
    }
    jobs = {
        job.name: {"assets": _job_assets(job), "executor": job.executor_def.name}
        for job in sorted(repo.get_all_jobs(), key=lambda job: job.name)
        if not job.name.startswith("__")  # Dagster's implicit and anonymous jobs: under what uses them
    }
    schedules = {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "timezone": schedule.execution_timezone,
            "default_status": schedule.default_status.value,
            "job": schedule.job_name,
        }
        for schedule in sorted(repo.schedule_defs, key=lambda schedule: schedule.name)
    }
    sensors = {}
    for sensor in sorted(repo.sensor_defs, key=lambda sensor: sensor.name):
        job_names = sorted(target.job_name for target in sensor.targets if target.job_name)
        # A sensor that targets assets runs them through an anonymous job: its target is those assets.
        target_assets = set(sensor.asset_selection.resolve(graph)) if sensor.asset_selection else set()
        for name in job_names:
            if name.startswith("__"):
                target_assets.update(repo.get_job(name).asset_layer.selected_asset_keys)
        sensors[sensor.name] = {
            "type": sensor.sensor_type.value,
            "default_status": sensor.default_status.value,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
            "target_jobs": [name for name in job_names if not name.startswith("__")],
            "target_assets": sorted(_key(key) for key in target_assets),
        }
    return {
        "assets": assets,
        "asset_checks": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted(repo.get_top_level_resources()),
    }


def print_rendered() -> None:
    """Subprocess entry point: the definitions of this process's environment, rendered, as JSON."""
    import platform_assets

    loaded_from = Path(platform_assets.__file__).resolve().parent.parent
    print(json.dumps({"loaded_from": os.fspath(loaded_from), "rendered": render(platform_defs())}))


# ---------------------------------------------------------------------------------------------- loading
@pytest.fixture(scope="module")
def local_defs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.Definitions]:
    """The local definitions, loaded once in this process from the repository."""
    local = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as patch:
        for variable in (
            "PLATFORM_ENV", "PLATFORM_DUCKDB_PATH", "PLATFORM_LANDING_DIR", "PLATFORM_APP_DB_URL",
        ):  # fmt: skip
            patch.delenv(variable, raising=False)
        patch.setenv("PLATFORM_LOCAL_DIR", os.fspath(local))
        patch.setenv("DAGSTER_HOME", os.fspath(local / "dagster_home"))
        environment.current.cache_clear()
        try:
            yield platform_defs()
        finally:
            environment.current.cache_clear()


def _render_in_build(mode: str, build: Path, home: Path) -> dict[str, Any]:
    from production.production_support import BIN, PLACEHOLDER_SETTINGS, base_env

    home.mkdir(parents=True, exist_ok=True)
    env = base_env(
        PLATFORM_ENV=mode,
        PLATFORM_BRANCH=CI_BRANCH,
        PLATFORM_LOCAL_DIR=os.fspath(home / "local"),
        DAGSTER_HOME=os.fspath(home),
        **PLACEHOLDER_SETTINGS,
    )
    # `-c` puts the working directory first on sys.path, so platform_assets is the build's copy.
    code = (
        f"import sys; sys.path.insert(0, {os.fspath(Path(__file__).parent)!r}); "
        f"import {Path(__file__).stem} as snapshot; snapshot.print_rendered()"
    )
    loaded = subprocess.run(
        [BIN / "python", "-c", code], cwd=build, env=env, capture_output=True, text=True, timeout=600
    )
    assert loaded.returncode == 0, f"{mode} definitions failed to load:\n{loaded.stderr[-5000:]}"
    output = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert Path(output["loaded_from"]) == build.resolve(), output["loaded_from"]
    return output["rendered"]


@pytest.fixture(scope="module")
def rendered(
    local_defs: dg.Definitions, prod_build: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Each environment rendered from one definitions load: ci and prod side by side in subprocesses."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            mode: pool.submit(_render_in_build, mode, prod_build, tmp_path_factory.mktemp(mode))
            for mode in ("ci", "prod")
        }
        local = render(local_defs)
        return {"local": local, **{mode: future.result() for mode, future in futures.items()}}


# ---------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("mode", ENVIRONMENTS)
def test_resolved_definitions_match_the_snapshot(
    mode: str, rendered: dict[str, dict[str, Any]], snapshot: Any
) -> None:
    assert rendered[mode] == snapshot


def _changed_assets(before: dict[str, Any], after: dict[str, Any]) -> dict[str, set[str]]:
    """Asset -> the fields whose rendering differs; the rest of the rendering must be identical."""
    assert {k: v for k, v in before.items() if k != "assets"} == {
        k: v for k, v in after.items() if k != "assets"
    }
    assert before["assets"].keys() == after["assets"].keys()
    return {
        key: {field for field, value in spec.items() if after["assets"][key][field] != value}
        for key, spec in before["assets"].items()
        if after["assets"][key] != spec
    }


@pytest.mark.parametrize(
    ("change", "selection", "fields"),
    [
        pytest.param(
            lambda overrides: [
                {**o, "automation": {"freshness": {"fail_after": "45m", "warn_after": "25m"}}}
                if o["select"] == "key:salesforce/*"
                else o
                for o in overrides
            ],
            "key:salesforce/*",
            {"freshness_policy"},
            id="salesforce-freshness-changed",
        ),
        pytest.param(
            lambda overrides: [
                *overrides,
                {"select": "group:marketing", "automation": {"condition": "manual"}},
            ],
            "group:marketing",
            {"automation_condition"},
            id="marketing-made-manual",
        ),
    ],
)
def test_a_changed_policy_override_shows_in_exactly_the_selected_assets(
    local_defs: dg.Definitions, change: Any, selection: str, fields: set[str]
) -> None:
    """The policy's YAML overrides, changed as an edit of defs/automation/defs.yaml would change them."""
    settings = policy_settings_from(local_defs)
    baseline = render(local_defs)
    # Re-applying the published policy changes nothing: any difference below is the edit's alone.
    assert render(apply_platform_policy(local_defs, settings)) == baseline
    data = settings.model_dump(mode="json")
    assert "key:salesforce/*" in [override["select"] for override in data["overrides"]]
    edited = type(settings).model_validate({**data, "overrides": change(data["overrides"])})
    changed = _changed_assets(baseline, render(apply_platform_policy(local_defs, edited)))
    selected = {
        _key(key)
        for key in dg.AssetSelection.from_string(selection).resolve(local_defs.resolve_asset_graph())
    }
    assert selected, f"{selection} selects no asset"
    assert changed == {key: fields for key in selected}
