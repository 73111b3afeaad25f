"""The platform's REAL definitions on a real instance: work runs when data changed, not when something ran.

A full cycle materializes everything for real (Meltano into DuckDB, dbt build, the syncs against the
Salesforce and Hightouch sandboxes on loopback); then Dagster's own `evaluate_automation_conditions` decides
what the automation sensors would request after each event:
- re-ingesting unchanged sources requests no dbt model and no sync, and `lineage_unchanged` confirms them;
- one new sign-up requests exactly the lineage of its stream, through the syncs, and nothing twice;
- a model whose code version (dbt's SQL checksum) changed is requested with its lineage;
- a failed blocking check of a sync's model holds the sync until the check passes.

Only assets whose condition reacts to data (`eager`) are compared: `on_cron` ones follow their cron.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import DATA_VERSION_TAG  # the tag a data version is stored in

from local_stack.sample_company import append_rows, generate
from local_stack.sandbox.hightouch import DEFAULT_SYNCS_DIR
from local_stack.sandbox.hightouch import start_sandbox as start_hightouch
from local_stack.sandbox.salesforce import SandboxHandle, sample_company_org
from local_stack.sandbox.salesforce import start_sandbox as start_salesforce
from platform_assets import environment
from platform_assets.automation import unchanged
from platform_assets.automation.settings import LAYER_TAG
from platform_assets.warehouse import connect_duckdb

pytestmark = pytest.mark.integration

SCALE, SEED = 0.2, 7
CYCLE_JOB = "platform_cycle"


@dataclass
class RealPlatform:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    landing_dir: Path
    orgs: dict[str, SandboxHandle] = field(default_factory=dict)
    """The Salesforce sandbox of each org of orgs.yaml (sales, support)."""
    cursor: object = None
    graph: object = field(init=False)

    def __post_init__(self) -> None:
        self.graph = self.defs.resolve_asset_graph()

    def keys(self, layer: str) -> set[dg.AssetKey]:
        return {k for k in self.graph.get_all_asset_keys() if self.graph.get(k).tags.get(LAYER_TAG) == layer}

    @property
    def data_driven(self) -> set[dg.AssetKey]:
        """Assets whose condition reacts to data changes (the policy's `eager`)."""
        return {
            key
            for key in self.graph.get_all_asset_keys()
            if (condition := self.graph.get(key).automation_condition) is not None
            and condition.get_label() in ("eager_on_data_change", "eager_after_blocking_checks")
        }

    def lineage(self, *keys: dg.AssetKey) -> set[dg.AssetKey]:
        downstream = dg.AssetSelection.assets(*keys).downstream().resolve(self.graph)
        return (downstream - set(keys)) & self.data_driven

    def run(self, keys: set[dg.AssetKey]) -> None:
        result = self.defs.resolve_job_def(CYCLE_JOB).execute_in_process(
            instance=self.instance, asset_selection=sorted(keys)
        )
        assert result.success

    def settle(self, rounds: int = 3) -> None:
        """Cycles until the sources hold what the syncs wrote back (the Salesforce streams read the records
        the first cycle's syncs created): each round runs what automation requests."""
        history = []
        for _ in range(rounds):
            self.run(self.keys("ingestion"))
            requested = self.evaluate()
            history.append(sorted(key.to_user_string() for key in requested))
            if not requested:
                return
            self.run(requested)
        pytest.fail(f"the platform did not settle in {rounds} cycles; requested per cycle: {history}")

    def evaluate(self, defs: dg.Definitions | None = None) -> set[dg.AssetKey]:
        """One automation tick over every layer: the data-driven assets it requests."""
        result = dg.evaluate_automation_conditions(
            defs=defs or self.defs, instance=self.instance, cursor=self.cursor
        )
        self.cursor = result.cursor
        return {key for key in self.data_driven if result.get_num_requested(key)}

    def confirm_unchanged(self) -> list[dg.AssetKey]:
        """One tick of the `lineage_unchanged` sensor, its events recorded as the daemon would."""
        sensor = self.defs.resolve_sensor_def(unchanged.SENSOR_NAME)
        repository = self.defs.get_repository_def()
        context = dg.build_sensor_context(instance=self.instance, repository_def=repository)
        result = sensor.evaluate_tick(context)
        events = list(result.asset_events)
        for event in events:
            self.instance.report_runless_asset_event(event)
        return [event.asset_key for event in events if isinstance(event, dg.AssetMaterialization)]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealPlatform]:
    root = tmp_path_factory.mktemp("real_lineage")
    local = root / "local"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLATFORM_ENV", "local")
        patch.setenv("PLATFORM_LOCAL_DIR", str(local))
        for variable in ("PLATFORM_DUCKDB_PATH", "PLATFORM_LANDING_DIR", "PLATFORM_APP_DB_URL"):
            patch.delenv(variable, raising=False)
        for variable in ("SALESFORCE_LOGIN_URL", "SALESFORCE_SUPPORT_LOGIN_URL", "HIGHTOUCH_API_BASE_URL"):
            patch.delenv(variable, raising=False)
        environment.current.cache_clear()
        env = environment.current()
        env.sandbox_dir.mkdir(parents=True, exist_ok=True)
        generate(env.landing_dir, SCALE, SEED)
        salesforce = start_salesforce(db_path=env.sandbox_dir / "salesforce.sqlite")
        salesforce.seed(sample_company_org(SCALE, SEED))
        # The second org of orgs.yaml, empty, with another daily API limit so its usage is recognisable.
        support = start_salesforce(
            db_path=env.sandbox_dir / "salesforce-support.sqlite", daily_api_limit=50_000
        )
        hightouch = start_hightouch(
            state_db=env.sandbox_dir / "hightouch.sqlite3",
            warehouse=env.duckdb_path,
            syncs_dir=DEFAULT_SYNCS_DIR,
            step_seconds=0.01,
        )
        patch.setenv("SALESFORCE_LOGIN_URL", salesforce.url)
        patch.setenv("SALESFORCE_SUPPORT_LOGIN_URL", support.url)
        patch.setenv("HIGHTOUCH_SANDBOX_PORT", str(hightouch.port))
        from platform_assets.definitions import defs, platform_cycle

        home = root / "dagster_home"
        home.mkdir()
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.local_temp(str(home)) as instance:
            world = RealPlatform(defs(), instance, env.landing_dir, {"sales": salesforce, "support": support})
            world.run(set(platform_cycle.selection.resolve(world.graph)))  # the full cycle, for real
            assert world.evaluate() == set(), "right after a full cycle nothing needs to run"
            world.settle()
            yield world
        hightouch.stop()
        support.stop()
        salesforce.stop()
    environment.current.cache_clear()


def test_real_lineage_runs_only_what_data_changed(platform: RealPlatform) -> None:
    sources = platform.keys("ingestion")

    # 1. An idle cycle: every source re-ingested, 0 new rows.
    platform.run(sources)
    assert platform.evaluate() == set(), "unchanged sources request no dbt model and no sync"
    confirmed = set(platform.confirm_unchanged())
    assert platform.lineage(*sources) <= confirmed, "everything behind unchanged sources is confirmed current"
    assert platform.evaluate() == set(), "confirmations are not changes"
    syncs = platform.keys("activation") & confirmed
    gate = platform.defs.map_resolved_asset_specs(
        func=lambda spec: spec.replace_attributes(
            automation_condition=dg.AutomationCondition.all_deps_blocking_checks_passed()
        ),
        selection=dg.AssetSelection.assets(*syncs),
    )
    passed = dg.evaluate_automation_conditions(defs=gate, instance=platform.instance)
    assert syncs and all(passed.get_num_requested(sync) for sync in syncs), (
        "the confirmed models' blocking checks still count as passed (their results follow the confirmation)"
    )
    assert platform.confirm_unchanged() == [], "confirmed once per input update"

    # 2. One new sign-up: exactly its stream's lineage, down to the syncs, and nothing twice.
    signups = next(key for key in sources if key.path[-1] == "signups")
    append_rows(platform.landing_dir, "signups", 1, seed=SEED)
    platform.run(sources)
    requested = platform.evaluate()
    assert requested == platform.lineage(signups)
    assert any(key.path[0] == "staging" for key in requested), "its staging model included"
    assert requested & platform.keys("activation"), "through the syncs"
    platform.run(requested)
    assert platform.evaluate() == set(), "nothing is requested twice"

    # 3. A model's SQL changed (dagster-dbt's code version is the SQL's checksum): it and its lineage.
    model = next(
        key
        for key in sorted(platform.keys("transformation"))
        if platform.lineage(key) & platform.keys("activation")
    )
    assert platform.graph.get(model).code_version, "dagster-dbt sets the code version from the SQL"
    edited = platform.defs.map_resolved_asset_specs(
        func=lambda spec: spec.replace_attributes(code_version="edited-sql"),
        selection=dg.AssetSelection.assets(model),
    )
    assert platform.evaluate(edited) == {model} | platform.lineage(model)


def test_failed_blocking_check_holds_the_sync(platform: RealPlatform) -> None:
    def blocking(model: dg.AssetKey) -> list[dg.AssetCheckKey]:
        return sorted(c for c in platform.graph.get(model).check_keys if platform.graph.get(c).blocking)

    sync, model = next(
        (key, parent)
        for key in sorted(platform.keys("activation") & platform.data_driven)
        for parent in sorted(platform.graph.get(key).parent_keys)
        if blocking(parent)
    )
    checks = blocking(model)
    platform.evaluate()  # settle the cursor

    def checks_ran(failing: dg.AssetCheckKey | None) -> None:
        for check in checks:
            platform.instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(
                    asset_key=model,
                    check_name=check.name,
                    passed=check != failing,
                    blocking=True,
                    severity=dg.AssetCheckSeverity.ERROR,
                )
            )

    # The model is rebuilt with new data (as a run would record it) and one of its blocking checks fails.
    platform.instance.report_runless_asset_event(
        dg.AssetMaterialization(model, tags={DATA_VERSION_TAG: "changed-by-test"})
    )
    checks_ran(failing=checks[0])
    assert sync not in platform.evaluate(), "the model changed but a blocking check failed"
    assert sync not in platform.evaluate(), "still held on the next tick"
    checks_ran(failing=None)
    assert sync in platform.evaluate(), "once the checks pass, the sync sends the change"


def test_two_orgs_each_sync_and_extract_against_their_own_sandbox(platform: RealPlatform) -> None:
    """orgs.yaml's two orgs in the real cycle: the support org receives its sync and is extracted as its
    own source, with its own state, Meltano state id and API usage; the sales org is untouched by it."""
    sales, support = platform.orgs["sales"], platform.orgs["support"]
    env = environment.current()
    with connect_duckdb(env.duckdb_path, read_only=True) as connection:
        (wanted,) = connection.execute(
            "SELECT count(*) FROM activation.act_salesforce_support_accounts"
        ).fetchone()
        extracted = connection.execute(
            "SELECT count(DISTINCT Workspace_Id__c) FROM raw_salesforce_support.account"
        ).fetchone()[0]
        state = dict(
            connection.execute(
                "SELECT sync_name, count(*) FROM platform_sync.sync_state GROUP BY 1"
            ).fetchall()
        )
    assert wanted > 0
    assert support.count("Account") == wanted, "the support org holds one Account per paying workspace"
    assert sales.count("Account") == len(sample_company_org(SCALE, SEED)["Account"]), (
        "sales org: none created"
    )
    assert extracted == wanted, "the support source extracted the support org's Accounts"
    assert state["support/support_accounts"] == wanted and "support_accounts" not in state
    assert state["leads"] > 0, "the default org's state keeps the bare sync names"

    def latest(*path: str, having: str) -> dict:
        """The metadata of the asset's latest materialization by a run (not a `lineage_unchanged`
        confirmation, which carries no metadata): the one that has `having`."""
        records = platform.instance.fetch_materializations(dg.AssetKey(list(path)), limit=50).records
        for record in records:  # newest first
            metadata = record.asset_materialization.metadata if record.asset_materialization else {}
            if having in metadata:
                return {name: value.value for name, value in metadata.items()}
        raise AssertionError(f"no materialization of {path} has {having}")

    support_sync, sales_sync = (
        latest("salesforce", name, having="sync_run_id") for name in ("support_accounts", "leads")
    )
    assert (support_sync["salesforce_org"], sales_sync["salesforce_org"]) == ("support", "sales")
    assert support_sync["daily_api_requests_max"] == 50_000, "usage read from the support org's own sandbox"
    assert sales_sync["daily_api_requests_max"] != 50_000
    assert support_sync["org_daily_api_budget"] == 20_000
    support_stream, sales_stream = (
        latest("raw", source, "account", having="meltano_state_id")
        for source in ("salesforce_support", "salesforce")
    )
    assert support_stream["meltano_state_id"] != sales_stream["meltano_state_id"], "one Meltano state per org"
    stream_org = platform.graph.get(dg.AssetKey(["raw", "salesforce_support", "account"])).metadata[
        "salesforce_org"
    ]
    assert stream_org.value == "support"
