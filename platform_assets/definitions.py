"""The one entry point: every declaration under defs/ plus platform-wide resources, jobs and policy."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from platform_assets import environment
from platform_assets.automation import apply_platform_policy
from platform_assets.automation.dead_runs import with_worker_identity
from platform_assets.resources import warehouse_resource

# The main job: one full platform cycle — ingestion, every dbt domain, then the syncs — in lineage order.
# Per-customer reports are partitioned: they run one partition per run (their sensor, backfills).
platform_cycle = dg.define_asset_job(
    "platform_cycle",
    selection=dg.AssetSelection.all() - dg.AssetSelection.tag("layer", "reports"),
    description="A full platform cycle: every source, every dbt domain, then every reverse-ETL sync.",
)


def load_declarations(package: Path) -> dg.Definitions:
    """Every declaration under <package>/defs/, built as `dg.load_from_defs_folder` builds them, without
    its catalogue of the component types that installed packages register (repository metadata for the UI's
    component browser). Building that catalogue imports each such package, dagster-snowflake (Snowpark)
    among them: most of a definitions load (docs/performance.md), and every run process loads them again."""
    tree = dg.ComponentTree.for_project(path_within_project=package)
    parts = sorted(
        path.relative_to(package / "defs")
        for path in (package / "defs").iterdir()
        if not path.name.startswith(("_", ".")) and (path.is_dir() or path.suffix == ".py")
    )
    return dg.Definitions.merge(
        *(tree.build_defs(part) for part in parts), dg.Definitions(component_tree=tree)
    )


@dg.definitions
def defs() -> dg.Definitions:
    env = environment.current()
    env.validate()
    declared = load_declarations(Path(__file__).parent)
    platform = dg.Definitions(
        resources={"warehouse": warehouse_resource(env)},
        jobs=[platform_cycle],
        # Locally the `warehouse` pool serialises every writer anyway, and a step subprocess would pay the
        # definitions load again; ci/prod keep Dagster's multiprocess default. Either way each run is
        # tagged with the process orchestrating it, so a dead run is found and released (dead_runs.py).
        executor=with_worker_identity(
            dg.in_process_executor if env.is_local else dg.multi_or_in_process_executor
        ),
    )
    return apply_platform_policy(dg.Definitions.merge(declared, platform))
