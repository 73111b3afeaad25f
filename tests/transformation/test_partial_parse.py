"""A dbt invocation's fresh parse state becomes the project's, so the next invocation parses only what
changed (dagster-dbt seeds every invocation's own target folder from the project's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from platform_assets.integrations.dbt.resource import PARTIAL_PARSE_FILE, keep_partial_parse


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    invocation, project = tmp_path / "target" / "run-1", tmp_path / "target"
    invocation.mkdir(parents=True)
    return invocation, project


def test_a_fresh_parse_replaces_the_projects_and_an_equal_one_is_left_alone(tmp_path: Path) -> None:
    invocation, project = _folders(tmp_path)
    (project / PARTIAL_PARSE_FILE).write_bytes(b"parsed for another profile")
    (invocation / PARTIAL_PARSE_FILE).write_bytes(b"parsed for this profile")
    keep_partial_parse(invocation, project)
    assert (project / PARTIAL_PARSE_FILE).read_bytes() == b"parsed for this profile"
    assert sorted(p.name for p in project.iterdir()) == [PARTIAL_PARSE_FILE, "run-1"]  # no staged leftovers

    os.utime(project / PARTIAL_PARSE_FILE, (1, 1))
    keep_partial_parse(invocation, project)  # same content: not rewritten
    assert (project / PARTIAL_PARSE_FILE).stat().st_mtime == 1


def test_nothing_to_keep_or_a_read_only_project_is_not_an_error(tmp_path: Path) -> None:
    invocation, project = _folders(tmp_path)
    keep_partial_parse(invocation, project)  # the invocation wrote no parse state (e.g. dbt failed early)
    assert not (project / PARTIAL_PARSE_FILE).exists()

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    (invocation / PARTIAL_PARSE_FILE).write_bytes(b"fresh")
    project.chmod(0o555)
    try:
        keep_partial_parse(invocation, project)
    finally:
        project.chmod(0o755)
    assert not (project / PARTIAL_PARSE_FILE).exists()
