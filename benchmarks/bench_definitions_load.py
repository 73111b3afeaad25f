"""Definitions load time of the dbt domains: our per-domain split vs one plain dagster-dbt `@dbt_assets`.

Measures (a) the platform's dbt project and (b) a generated project of 2,000 models (each with a unique
and a not_null test) across 10 domain tags. Each figure is the median of several in-process loads of the
same prepared manifest, the two alternating: read the manifest, build the asset definitions, resolve the
asset graph and jobs.
The baseline is `@dbt_assets(manifest=...)` over the whole manifest with the default translator.
Target: split / plain <= 1.2.

    PLATFORM_LOCAL_DIR=/tmp/<you> .venv/bin/python benchmarks/bench_definitions_load.py [--repeat 11]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets
from figures import emit

from platform_assets import environment
from platform_assets.components.dbt_domains import DbtDomainsComponent, prepare_manifest

GENERATED_DOMAINS = 10
GENERATED_MODELS = 2_000
TARGET_RATIO = 1.2
DBT = Path(sys.executable).parent / "dbt"


def generate_project(root: Path, domains: int = GENERATED_DOMAINS, models: int = GENERATED_MODELS) -> Path:
    """A dbt project shaped like ours: one folder, group and tag per domain, chains of models that also
    read the first domain (as marts read staging), a unique and a not_null test per model."""
    project = root / "bench_project"
    per_domain = models // domains
    domain_config = "\n".join(
        f'    domain_{d}:\n      +schema: domain_{d}\n      +group: domain_{d}\n      +tags: ["domain_{d}"]'
        for d in range(domains)
    )
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: bench\nversion: '1.0.0'\nconfig-version: 2\nprofile: bench\n"
        f"models:\n  bench:\n    +materialized: table\n{domain_config}\n"
    )
    (project / "profiles.yml").write_text(
        "bench:\n  target: local\n  outputs:\n    local:\n"
        f"      type: duckdb\n      path: {root / 'bench.duckdb'}\n"
    )
    groups = "\n".join(
        f"  - name: domain_{d}\n    owner: {{email: team-{d}@example.com}}\n    description: Domain {d}."
        for d in range(domains)
    )
    (project / "models" / "domains.yml").write_text(f"version: 2\ngroups:\n{groups}\n")
    for d in range(domains):
        folder = project / "models" / f"domain_{d}"
        folder.mkdir()
        schema = ["version: 2", "models:"]
        for i in range(per_domain):
            name = f"d{d}_m{i:04d}"
            parents = [f"d{d}_m{i - 1:04d}"] if i else []
            if d and i % 10 == 0:
                parents.append(f"d0_m{i:04d}")
            body = (
                " union all ".join(f"select id from {{{{ ref('{p}') }}}}" for p in parents)
                or "select 1 as id"
            )
            (folder / f"{name}.sql").write_text(f"select distinct id from ({body}) as parents\n")
            schema += [
                f"  - name: {name}",
                f"    description: Model {i} of domain {d}.",
                "    columns:",
                "      - name: id",
                "        data_tests: [unique, not_null]",
            ]
        (folder / "schema.yml").write_text("\n".join(schema) + "\n")
    return project


def parse(project: Path) -> None:
    subprocess.run(
        [
            os.fspath(DBT),
            "parse",
            "--quiet",
            "--project-dir",
            os.fspath(project),
            "--profiles-dir",
            os.fspath(project),
        ],
        check=True,
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )


def load_split(project_dir: Path) -> dg.Definitions:
    component = DbtDomainsComponent(project_dir=os.fspath(project_dir))
    return component.build_defs(dg.ComponentTree.for_test().load_context)


def load_plain(project_dir: Path) -> dg.Definitions:
    project = DbtProject(project_dir)
    manifest = json.loads(Path(project.manifest_path).read_text())

    @dbt_assets(manifest=manifest, project=project)
    def everything(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build"], context=context).stream()

    return dg.Definitions(
        assets=[everything],
        jobs=[dg.define_asset_job("dbt_build_all", selection=dg.AssetSelection.assets(everything))],
        resources={"dbt": DbtCliResource(project_dir=os.fspath(project_dir), dbt_executable=os.fspath(DBT))},
    )


def load_seconds(load: Callable[[Path], dg.Definitions], project_dir: Path) -> float:
    start = time.perf_counter()
    defs = load(project_dir)
    defs.resolve_asset_graph()
    defs.resolve_all_job_defs()
    return time.perf_counter() - start


def compare(label: str, project_dir: Path, repeat: int, what: str) -> float:
    load_split(project_dir)  # warm imports and the first-call caches of both paths alike
    load_plain(project_dir)
    # Alternate the two so that a slower stretch of a shared machine hits both alike.
    rounds = [
        (load_seconds(load_split, project_dir), load_seconds(load_plain, project_dir)) for _ in range(repeat)
    ]
    split = statistics.median(s for s, _ in rounds)
    plain = statistics.median(p for _, p in rounds)
    ratio = split / plain
    verdict = "ok" if ratio <= TARGET_RATIO else f"ABOVE TARGET {TARGET_RATIO}"
    print(
        f"{label:<44} split {split:7.3f}s   plain @dbt_assets {plain:7.3f}s   ratio {ratio:4.2f}  ({verdict})"
    )
    emit(
        __file__,
        what,
        platform=f"{split:.3f} s (median of {repeat})",
        baseline=f"plain `@dbt_assets` {plain:.3f} s",
        ratio=ratio,
        target=f"≤ {TARGET_RATIO}x",
    )
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    os.environ.setdefault("PLATFORM_LOCAL_DIR", tempfile.mkdtemp(prefix="bench_dbt_"))
    os.environ.pop("PLATFORM_APP_DB_URL", None)
    environment.current.cache_clear()

    project_manifest = prepare_manifest(environment.DBT_PROJECT_DIR)
    models = sum(
        1
        for node in json.loads(project_manifest.read_text())["nodes"].values()
        if node["resource_type"] == "model"
    )
    ratios = [
        compare(
            f"(a) platform project ({models} models)",
            environment.DBT_PROJECT_DIR,
            args.repeat,
            what=f"Definitions load, this project ({models} dbt models)",
        )
    ]

    with tempfile.TemporaryDirectory(prefix="bench_dbt_project_") as root:
        start = time.perf_counter()
        generated = generate_project(Path(root))
        parse(generated)
        elapsed = time.perf_counter() - start
        print(f"generated and parsed {GENERATED_MODELS} models in {elapsed:.1f}s (not part of the figures)")
        ratios.append(
            compare(
                f"(b) generated ({GENERATED_MODELS} models, {GENERATED_DOMAINS} domains)",
                generated,
                args.repeat,
                what=f"Definitions load, generated {GENERATED_MODELS:,} models / {GENERATED_DOMAINS} domains",
            )
        )
    return 0 if max(ratios) <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
