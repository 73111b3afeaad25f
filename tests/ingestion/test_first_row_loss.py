"""The reconciliation check catches target-duckdb 0.8.0's first-row loss under a newer duckdb (a real run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from local_stack.sample_company import generate
from platform_assets import environment
from platform_assets.components.meltano import CHECK_NAME, ingestion_definitions
from platform_assets.resources import warehouse_resource

pytestmark = pytest.mark.integration
SOURCES = environment.PROJECT_ROOT / "platform_assets" / "defs" / "ingestion" / "sources.yaml"
PINNED = "pip_url: target-duckdb==0.8.0 duckdb==1.0.0"


@pytest.fixture(scope="module")
def unpinned_project(tmp_path_factory: pytest.TempPathFactory, meltano_installer) -> Path:
    """A copy of the Meltano project whose target-duckdb runs on duckdb 1.4 (which loses rows)."""
    root = tmp_path_factory.mktemp("meltano-unpinned")
    text = (environment.MELTANO_PROJECT_DIR / "meltano.yml").read_text()
    assert PINNED in text
    (root / "meltano.yml").write_text(text.replace(PINNED, "pip_url: target-duckdb==0.8.0 duckdb==1.4.1"))
    shutil.copytree(
        environment.MELTANO_PROJECT_DIR / "extractors" / "tap-landing",
        root / "extractors" / "tap-landing",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"),
    )
    meltano_installer(root, (("extractor", "tap-landing"), ("loader", "target-duckdb")))
    return root


def record_mode_sources(path: Path) -> Path:
    """The platform's sources.yaml with landing in record mode into target-duckdb (its bulk default loader,
    target-duckdb-bulk, does not have this bug)."""
    sources = yaml.safe_load(SOURCES.read_text())
    landing = sources["sources"]["landing"]
    landing["loader"] = "target-duckdb"
    landing["settings"].pop("batch_dir")
    path.write_text(yaml.safe_dump(sources, sort_keys=False))
    return path


def test_rows_landed_check_fails_when_the_loader_drops_the_first_row(
    unpinned_project, local_platform, tmp_path
):
    counts = generate(local_platform.landing_dir, scale=0.02, seed=5)
    key = dg.AssetKey(["raw", "landing", "campaigns"])
    defs = ingestion_definitions(record_mode_sources(tmp_path / "sources.yaml"), unpinned_project)
    result = dg.materialize(
        list(defs.assets or []),
        selection=[key],
        raise_on_error=False,
        resources={**(defs.resources or {}), "warehouse": warehouse_resource()},
    )
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME]
    assert not evaluation.passed
    assert evaluation.metadata["rows_extracted"].value == counts["campaigns"]
    assert evaluation.metadata["rows_landed"].value == counts["campaigns"] - 1
