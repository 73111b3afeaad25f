"""The dbt domains on a project that is not the sample's (foreign_dbt_project/): seeds as raw data, a local
package, tests crossing domains, a versioned model, a snapshot, incremental and ephemeral models, a model
without +schema, a semantic model. Built from an empty warehouse; every dbt test must run exactly once."""

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from platform_assets import dbt_manifest, environment
from platform_assets.components.dbt_domains import (
    DbtDomainsComponent,
    DbtManifestError,
    install_packages,
    prepare_manifest,
)

FOREIGN_PROJECT = Path(__file__).parent / "foreign_dbt_project"
# What the platform requires of any dbt project (docs/transformation.md#bring-your-own-dbt-project).
PLATFORM_FILES = ("profiles.yml", "macros/generate_schema_name.sql")
DOMAINS = ("core", "sales", "finance")
SNOWFLAKE_SETTINGS = ("ACCOUNT", "USER", "PASSWORD", "ROLE", "WAREHOUSE", "DATABASE")


def copy_foreign_project(destination: Path) -> Path:
    project_dir = destination / "dbt_project"
    shutil.copytree(FOREIGN_PROJECT, project_dir)
    for name in PLATFORM_FILES:
        (project_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(environment.DBT_PROJECT_DIR / name, project_dir / name)
    return project_dir


@pytest.fixture
def local_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[environment.PlatformEnvironment]:
    """A local environment whose warehouse does not exist yet."""
    for variable in ("PLATFORM_ENV", "PLATFORM_DUCKDB_PATH", "PLATFORM_APP_DB_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PLATFORM_LOCAL_DIR", str(tmp_path / "local"))
    environment.current.cache_clear()
    yield environment.current()
    environment.current.cache_clear()


@pytest.fixture(scope="session")
def prepared_foreign_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared once (local environment); each test gets its own copy to edit and build."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("PLATFORM_ENV", "PLATFORM_DUCKDB_PATH", "PLATFORM_APP_DB_URL"):
            patch.delenv(variable, raising=False)
        environment.current.cache_clear()
        project_dir = copy_foreign_project(tmp_path_factory.mktemp("foreign"))
        prepare_manifest(project_dir)  # installs the local package first: dbt_packages does not exist yet
    environment.current.cache_clear()
    return project_dir


@pytest.fixture
def foreign_project(
    prepared_foreign_project: Path, tmp_path: Path, local_env: environment.PlatformEnvironment
) -> Path:
    project_dir = tmp_path / "dbt_project"
    shutil.copytree(prepared_foreign_project, project_dir, symlinks=True)
    return project_dir


def load(project_dir: Path) -> dg.Definitions:
    component = DbtDomainsComponent(project_dir=str(project_dir))
    return component.build_defs(dg.ComponentTree.for_test().load_context)


def specs_of(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    return {spec.key: spec for assets_def in defs.assets or [] for spec in assets_def.specs}


def dbt_test_runs(project_dir: Path) -> Counter:
    """(test or unit test, step) -> how often it ran, from every dbt invocation's run_results.json."""
    runs: Counter = Counter()
    for results in project_dir.glob("target/*/run_results.json"):
        step = results.parent.name.split("-")[0]
        for result in json.loads(results.read_text())["results"]:
            if result["unique_id"].startswith(("test.", "unit_test.")):
                assert result["status"] == "pass", result
                runs[(result["unique_id"], step)] += 1
    return runs


def expected_tests(project_dir: Path) -> dict[str, str]:
    """Every test of the project -> the step that must run it."""
    manifest = json.loads((project_dir / "target" / "manifest.json").read_text())
    home = {
        "raw_customers": "core",
        "stg_customers": "core",
        "stg_orders": "core",
        "stg_payments": "core",
        "customers_v1": "sales",
        "customers_v2": "sales",
        "orders": "sales",
        "payments_daily": "finance",
        "paid_orders": "finance",
        "revenue_by_month": "finance",
    }
    # a unit test runs in the step of the model it tests
    expected = {unique_id: f"dbt_{home[test['model']]}" for unique_id, test in manifest["unit_tests"].items()}
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] != "test":
            continue
        attached = node.get("attached_node") or "model.shop.paid_orders"  # the singular test checks it
        name = manifest["nodes"][attached]["name"]
        version = manifest["nodes"][attached].get("version")
        expected[unique_id] = f"dbt_{home[name if version is None else f'{name}_v{version}']}"
    return expected


def assert_each_test_ran_once_in_its_domain(project_dir: Path) -> None:
    runs = dbt_test_runs(project_dir)
    expected = expected_tests(project_dir)
    assert len(expected) == 20  # 19 data tests, 1 unit test
    assert {test: step for test, step in runs} == expected
    assert set(runs.values()) == {1}


def warehouse_tables(env: environment.PlatformEnvironment) -> set[str]:
    with duckdb.connect(str(env.duckdb_path), read_only=True) as connection:
        rows = connection.execute("select table_schema, table_name from information_schema.tables").fetchall()
    return {f"{schema}.{table}" for schema, table in rows}


# --- definitions ---------------------------------------------------------------------------------------


def test_every_resource_type_lands_in_its_domain_with_stable_keys(foreign_project):
    specs = specs_of(load(foreign_project))
    by_group = {
        group: {key.to_user_string() for key, spec in specs.items() if spec.group_name == group}
        for group in DOMAINS
    }
    assert by_group == {
        "core": {
            "raw/raw_customers",
            "raw/raw_orders",
            "raw/raw_payments",
            "staging/stg_customers",
            "staging/stg_orders",
            "staging/stg_payments",
            "staging/time_spine_days",
            "snapshots/customers_snapshot",
        },
        # one asset per version of `customers`; orders is incremental
        "sales": {"sales/customers_v1", "sales/customers_v2", "sales/orders"},
        # meta.dagster.asset_key honoured; no +schema: the target's schema, without any environment prefix
        "finance": {"finance/daily_payments", "public/revenue_by_month", "public/paid_orders"},
    }
    assert len(specs) == 14  # the ephemeral model and the semantic model are not assets
    owners = {
        group: {tuple(spec.owners) for spec in specs.values() if spec.group_name == group}
        for group in DOMAINS
    }
    assert owners == {
        "core": {("core-data@shop.example",)},
        "sales": {("sales-analytics@shop.example",)},
        "finance": {("finance@shop.example",)},
    }
    # lineage through the ephemeral model int_order_payments
    orders_deps = {dep.asset_key.to_user_string() for dep in specs[dg.AssetKey(["sales", "orders"])].deps}
    assert orders_deps == {"staging/stg_orders", "staging/stg_payments"}


def test_a_test_reading_another_domain_orders_the_steps(foreign_project):
    defs = load(foreign_project)
    paid_orders = specs_of(defs)[dg.AssetKey(["public", "paid_orders"])]
    # paid_orders' relationships test reads sales' customers_v2: finance's step must run after it
    assert dg.AssetKey(["sales", "customers_v2"]) in {dep.asset_key for dep in paid_orders.deps}
    checks = {spec.name: spec for assets_def in defs.assets for spec in assets_def.check_specs}
    relationship = next(name for name in checks if name.startswith("relationships_paid_orders"))
    assert checks[relationship].asset_key == dg.AssetKey(["public", "paid_orders"])


def test_syncs_resolve_a_versioned_model_by_its_plain_name_to_the_latest_version(foreign_project):
    manifest = dbt_manifest.read(foreign_project / "target" / "manifest.json")
    assert dbt_manifest.resolve_model("customers", manifest).asset_key == dg.AssetKey(
        ["sales", "customers_v2"]
    )
    assert dbt_manifest.resolve_model("customers_v1", manifest).asset_key == dg.AssetKey(
        ["sales", "customers_v1"]
    )
    assert dbt_manifest.resolve_model("customers", manifest).relation == ("sales", "customers_v2")
    assert dbt_manifest.resolve_model("revenue_by_month", manifest).relation == ("public", "revenue_by_month")


def test_keys_are_the_same_in_ci_where_relations_carry_the_branch_prefix_once(
    foreign_project, tmp_path, monkeypatch
):
    local_keys = set(specs_of(load(foreign_project)))
    ci_project = copy_foreign_project(tmp_path / "ci")
    monkeypatch.setenv("PLATFORM_ENV", "ci")
    monkeypatch.setenv("PLATFORM_BRANCH", "feature/x")
    for setting in SNOWFLAKE_SETTINGS:  # parse only: nothing connects
        monkeypatch.setenv(f"SNOWFLAKE_{setting}", "unused")
    environment.current.cache_clear()
    prepare_manifest(ci_project)
    assert set(specs_of(load(ci_project))) == local_keys
    nodes = json.loads((ci_project / "target" / "manifest.json").read_text())["nodes"]
    assert nodes["model.shop.revenue_by_month"]["schema"] == "ci_feature_x_public"
    assert nodes["model.shop.orders"]["schema"] == "ci_feature_x_sales"


def edited_manifest(project_dir: Path, edit) -> None:
    path = project_dir / "target" / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest["nodes"])
    path.write_text(json.dumps(manifest))


def test_a_group_disagreeing_with_the_domain_tag_fails_load_naming_the_file(foreign_project):
    edited_manifest(
        foreign_project, lambda nodes: nodes["seed.shop.raw_orders"]["config"].update(group="sales")
    )
    with pytest.raises(
        DbtManifestError, match=r"seeds/raw_orders\.csv: domain tag 'core' but dbt group 'sales'"
    ):
        load(foreign_project)


def test_an_untagged_snapshot_fails_load_naming_the_file(foreign_project):
    edited_manifest(foreign_project, lambda nodes: nodes["snapshot.shop.customers_snapshot"].update(tags=[]))
    with pytest.raises(
        DbtManifestError, match=r"snapshots/customers_snapshot\.sql: domain tags none"
    ) as error:
        load(foreign_project)
    assert "`snapshots:`" in str(error.value)


def test_a_singular_test_over_unrelated_domains_must_name_its_model(foreign_project):
    def reads_sales_and_finance(nodes):
        nodes["test.shop.assert_paid_orders_match_payments"]["depends_on"]["nodes"] = [
            "model.shop.paid_orders",
            "model.shop.orders",
        ]

    edited_manifest(foreign_project, reads_sales_and_finance)
    with pytest.raises(
        DbtManifestError, match=r"tests/assert_paid_orders_match_payments\.sql: .* finance, sales"
    ):
        load(foreign_project)


def test_packages_that_cannot_be_installed_say_how_to_vendor_them(tmp_path, local_env):
    project_dir = copy_foreign_project(tmp_path)
    (project_dir / "packages.yml").write_text(
        f"packages:\n  - git: file://{tmp_path}/no-such-repository.git\n    revision: main\n"
    )
    with pytest.raises(DbtManifestError, match=r"`- local: packages/<name>` in packages.yml"):
        install_packages(project_dir)


# --- builds from an empty warehouse ----------------------------------------------------------------------


def test_dbt_build_all_builds_an_empty_warehouse_running_each_test_once(foreign_project, local_env):
    assert not local_env.duckdb_path.exists()
    defs = load(foreign_project)
    result = defs.resolve_job_def("dbt_build_all").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert_each_test_ran_once_in_its_domain(foreign_project)
    assert unit_test_results(result) == {
        ("public/revenue_by_month", "revenue_sums_payments_per_month", "pass")
    }
    assert {
        "raw.raw_payments",
        "snapshots.customers_snapshot",
        "sales.customers_v1",
        "sales.customers_v2",
        "public.payments_daily",
        "public.revenue_by_month",
    } <= warehouse_tables(local_env)


def test_domains_built_one_by_one_in_dependency_order_with_run_config(foreign_project, local_env):
    defs = load(foreign_project)
    resources = dict(defs.resources or {})
    for domain in DOMAINS:
        result = dg.materialize(
            list(defs.assets or []),
            selection=dg.AssetSelection.groups(domain),
            resources=resources,
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success
    assert_each_test_ran_once_in_its_domain(foreign_project)
    with duckdb.connect(str(local_env.duckdb_path), read_only=True) as connection:
        revenue = connection.execute("select sum(revenue) from public.revenue_by_month").fetchone()[0]
    assert float(revenue) == 184.0

    # Run config (the launchpad's): dbt vars and a full refresh of finance's incremental model.
    config = {"vars": {"revenue_factor": 2}, "full_refresh": True}
    result = dg.materialize(
        list(defs.assets or []),
        selection=dg.AssetSelection.groups("finance"),
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"dbt_finance": {"config": config}}},
    )
    assert result.success
    with duckdb.connect(str(local_env.duckdb_path), read_only=True) as connection:
        revenue = connection.execute("select sum(revenue) from public.revenue_by_month").fetchone()[0]
    assert float(revenue) == 368.0
    last_finance_run = max(
        foreign_project.glob("target/dbt_finance-*/run_results.json"), key=lambda p: p.stat().st_mtime
    )
    assert json.loads(last_finance_run.read_text())["args"]["full_refresh"] is True


def unit_test_results(result: dg.ExecuteInProcessResult) -> set[tuple[str, str, str]]:
    """(model's asset key, unit test, status) of each unit test result shown on a model."""
    return {
        (
            event.asset_key.to_user_string(),
            event.metadata["dbt_unit_test"].value,
            event.metadata["dbt_unit_test_status"].value,
        )
        for event in (
            e.asset_observation_data.asset_observation for e in result.get_asset_observation_events()
        )
        if "dbt_unit_test" in event.metadata
    }


def test_a_failing_unit_test_shows_on_its_model_and_dbt_skips_the_model(foreign_project, local_env):
    finance_yml = foreign_project / "models" / "marts" / "finance" / "_finance.yml"
    finance_yml.write_text(finance_yml.read_text().replace("revenue: 15}", "revenue: 16}"))
    prepare_manifest(foreign_project)
    defs = load(foreign_project)
    result = defs.resolve_job_def("dbt_build_all").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    assert unit_test_results(result) == {
        ("public/revenue_by_month", "revenue_sums_payments_per_month", "fail")
    }
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    # dbt's semantics: the model under a failing unit test is not built; the rest of its domain is
    assert "finance/daily_payments" in materialized
    assert "public/revenue_by_month" not in materialized
    assert "public.revenue_by_month" not in warehouse_tables(local_env)
