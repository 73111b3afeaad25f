"""Meltano state of the platform's pipelines: list, get, set, clear (whole pipelines or single streams).

Thin wrappers over `meltano state …` run with the same environment as the pipelines (so locally they act
on this PLATFORM_LOCAL_DIR's state). Meant for run time (jobs, the UI, operators), never definitions load.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from platform_assets import environment
from platform_assets.environment import PlatformEnvironment
from platform_assets.integrations.meltano.runner import meltano_env


class MeltanoStateError(RuntimeError):
    """A `meltano state` command failed; carries its output."""


def _meltano_state(args: list[str], env: PlatformEnvironment | None, project_root: Path) -> str:
    env = env or environment.current()
    command = ["meltano", f"--environment={env.mode.value}", "state", *args]
    completed = subprocess.run(
        command,
        cwd=project_root,
        env=meltano_env(env, project_root),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise MeltanoStateError(
            f"`meltano state {' '.join(args[:1])}` failed (exit {completed.returncode}): "
            f"{(completed.stderr or completed.stdout).strip()[-2000:]}"
        )
    return completed.stdout


def list_states(
    pattern: str | None = None,
    *,
    env: PlatformEnvironment | None = None,
    project_root: Path = environment.MELTANO_PROJECT_DIR,
) -> list[str]:
    """State ids stored for this environment (optionally matching a glob `pattern`)."""
    output = _meltano_state(["list", *(["--pattern", pattern] if pattern else [])], env, project_root)
    return [line.strip() for line in output.splitlines() if line.strip()]


def get_state(
    state_id: str,
    *,
    env: PlatformEnvironment | None = None,
    project_root: Path = environment.MELTANO_PROJECT_DIR,
) -> dict[str, Any]:
    """The stored state of one pipeline ({} when it has none), e.g. {"singer_state": {"bookmarks": …}}."""
    if state_id not in list_states(state_id, env=env, project_root=project_root):
        return {}
    output = _meltano_state(["get", state_id], env, project_root).strip()
    return json.loads(output) if output else {}


def set_state(
    state_id: str,
    state: dict[str, Any],
    *,
    env: PlatformEnvironment | None = None,
    project_root: Path = environment.MELTANO_PROJECT_DIR,
) -> None:
    """Replace one pipeline's state (the document `get_state` returns)."""
    _meltano_state(["set", "--force", state_id, json.dumps(state)], env, project_root)


def clear_state(
    state_id: str,
    *,
    env: PlatformEnvironment | None = None,
    project_root: Path = environment.MELTANO_PROJECT_DIR,
) -> None:
    """Forget a pipeline's state: its next run extracts everything again."""
    _meltano_state(["clear", "--force", state_id], env, project_root)


def clear_streams(
    state_id: str,
    streams: Iterable[str],
    *,
    env: PlatformEnvironment | None = None,
    project_root: Path = environment.MELTANO_PROJECT_DIR,
) -> list[str]:
    """Drop the bookmarks of some streams only; returns the streams that had one."""
    state = get_state(state_id, env=env, project_root=project_root)
    bookmarks = state.get("singer_state", {}).get("bookmarks", {})
    removed = [stream for stream in streams if bookmarks.pop(stream, None) is not None]
    if removed:
        set_state(state_id, state, env=env, project_root=project_root)
    return removed


def stream_bookmarks(state: dict[str, Any], stream: str) -> Any:
    """One stream's bookmark from a state document (None when absent)."""
    return state.get("singer_state", {}).get("bookmarks", {}).get(stream)
