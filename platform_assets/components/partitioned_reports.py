"""Per-customer reports: assets partitioned by a dynamic partition set that a SQL query keeps in step.

Declared in a defs.yaml (platform_assets/defs/reports/defs.yaml; docs/workflows.md#per-customer-reports):

- `partition_sets.<name>.query`: the first column of its rows are the partition keys (e.g. one per
  workspace). The sensor `<name>_partitions` runs it on every tick, adds the new keys, deletes the keys the
  query no longer returns, and (`run_new_partitions`) launches one run per new key.
- `reports.<name>`: the asset `[<schema>, <name>]` partitioned by its set. Its `sql` builds one partition's
  rows, with `:partition_key` bound to the key; the rows replace that partition's rows of the table
  `<schema>.<name>` (column `partition_key` first), so re-running a partition never duplicates it.

One run per partition (runs, backfills and the sensor): a failing customer fails only its own run.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field

from platform_assets import dbt_manifest, environment
from platform_assets.warehouse import Warehouse, WarehouseSession, quote_identifier
from platform_assets.warehouse import transaction as warehouse_transaction
from platform_assets.workflows import sql as declared_sql

PARTITION_KEY = "partition_key"
LAYER = "reports"  # not a layer of the automation policy: these assets run from their sensor and backfills


class ReportsConfigError(ValueError):
    """The reports declaration cannot be built; the message names the file and key."""


class PartitionSetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(description="SQL whose first column lists the partition keys ({schema:x} allowed).")
    interval_seconds: int = 60
    run_new_partitions: bool = Field(default=True, description="Launch one run per newly added key.")


class ReportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    partition_set: str
    sql: str = Field(description="One partition's rows; `:partition_key` is bound to the key.")
    schema_name: str = Field(default="reports", alias="schema")
    description: str | None = None
    deps: list[str] = Field(
        default_factory=list,
        description="What the report reads: dbt models (`name` or `schema.name`) or asset keys `a/b`.",
    )
    owners: list[str] = Field(default_factory=list)


class PartitionedReportsComponent(dg.Component, dg.Model, dg.Resolvable):
    """Dynamic partition sets kept in step with SQL, and the report assets partitioned by them."""

    partition_sets: dict[str, PartitionSetSettings] = Field(default_factory=dict)
    reports: dict[str, ReportSettings] = Field(default_factory=dict)
    running_by_default_in: list[environment.Mode] = Field(
        default_factory=lambda: [environment.Mode.LOCAL],
        description="Environments where the partition sensors start RUNNING.",
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        where = str(Path(context.path) / "defs.yaml")
        running = environment.current().mode in self.running_by_default_in
        return build_reports_defs(self.partition_sets, self.reports, where, running)


def build_reports_defs(
    partition_sets: dict[str, PartitionSetSettings],
    reports: dict[str, ReportSettings],
    where: str,
    running: bool = False,
) -> dg.Definitions:
    manifest = dbt_manifest.read_if_prepared()
    partitions = {name: dg.DynamicPartitionsDefinition(name=name) for name in partition_sets}
    for name, settings in partition_sets.items():
        declared_sql.check(settings.query, frozenset(), f"{where}: partition_sets.{name}.query")
    assets = [
        report_asset(name, report, partitions, manifest, f"{where}: reports.{name}")
        for name, report in reports.items()
    ]
    jobs, sensors = [], []
    for name, settings in partition_sets.items():
        keys = [a.key for a, r in zip(assets, reports.values(), strict=True) if r.partition_set == name]
        if not keys:
            continue
        job = dg.define_asset_job(
            f"{name}_reports",
            selection=keys,
            description=f"The reports of one `{name}` partition (one run per partition).",
        )
        jobs.append(job)
        sensors.append(partition_sensor(name, settings, job, running))
    return dg.Definitions(assets=assets, jobs=jobs, sensors=sensors)


def _dep_key(reference: str, manifest: dbt_manifest.DbtManifest | None, where: str) -> dg.AssetKey:
    if "/" in reference:
        return dg.AssetKey.from_user_string(reference)
    try:
        return dbt_manifest.resolve_model(reference, manifest).asset_key
    except ValueError as error:
        raise ReportsConfigError(f"{where}.deps: {error}") from None


def report_asset(
    name: str,
    report: ReportSettings,
    partitions: dict[str, dg.DynamicPartitionsDefinition],
    manifest: dbt_manifest.DbtManifest | None,
    where: str,
) -> dg.AssetsDefinition:
    if report.partition_set not in partitions:
        raise ReportsConfigError(
            f"{where}.partition_set: {report.partition_set!r} is not declared under partition_sets "
            f"(declared: {', '.join(partitions) or 'none'})"
        )
    declared_sql.check(report.sql, frozenset({PARTITION_KEY}), f"{where}.sql")
    try:
        quote_identifier(report.schema_name)
        quote_identifier(name)
    except ValueError as error:
        raise ReportsConfigError(f"{where}: {error}") from None

    @dg.asset(
        key=[report.schema_name, name],
        partitions_def=partitions[report.partition_set],
        deps=[_dep_key(reference, manifest, where) for reference in report.deps],
        group_name=LAYER,
        kinds={"sql"},
        tags={"layer": LAYER},
        owners=report.owners,
        pool="warehouse",
        description=report.description or f"Report `{name}`: one partition per `{report.partition_set}` key.",
        metadata={"platform/partition_set": report.partition_set, "source_file": where.split(":")[0]},
    )
    def _report(context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[Warehouse]):
        with warehouse.session() as session:
            rows = replace_partition(session, report.schema_name, name, report.sql, context.partition_key)
        return dg.MaterializeResult(metadata={"rows": rows, PARTITION_KEY: context.partition_key})

    return _report


def replace_partition(session: WarehouseSession, schema: str, table: str, sql: str, key: str) -> int:
    """Replace one partition's rows of `<schema>.<table>` with the report's rows; returns their count."""
    relation = f"{environment.current().schema(schema)}.{table}"
    select, params = declared_sql.bind(
        f"select :{PARTITION_KEY} as {PARTITION_KEY}, r.* from ({sql}) r", {PARTITION_KEY: key}
    )
    session.execute(f"create schema if not exists {environment.current().schema(schema)}")
    session.execute(f"create table if not exists {relation} as {select} limit 0", params)
    with warehouse_transaction(session) as tx:
        tx.execute(f"delete from {relation} where {PARTITION_KEY} = ?", [key])
        tx.execute(f"insert into {relation} {select}", params)
    row = session.fetchone(f"select count(*) from {relation} where {PARTITION_KEY} = ?", [key])
    return int(row[0]) if row else 0


def partition_keys(warehouse: Warehouse, query: str) -> list[str]:
    """The query's first column as distinct string keys, in the query's order (nulls left out)."""
    with warehouse.session(read_only=True) as session:
        rows = declared_sql.fetch_rows(session, query, {})
    keys = [str(next(iter(row.values()))) for row in rows if next(iter(row.values())) is not None]
    return list(dict.fromkeys(keys))


def partition_sensor(
    name: str,
    settings: PartitionSetSettings,
    job: dg.JobDefinition,
    running: bool,  # an unresolved asset job
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{name}_partitions",
        job=job,
        minimum_interval_seconds=settings.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
        description=f"Keeps the `{name}` partitions in step with their query: adds new keys, deletes "
        "keys it no longer returns"
        + (", runs each new key's reports." if settings.run_new_partitions else "."),
    )
    def _sensor(context: dg.SensorEvaluationContext, warehouse: dg.ResourceParam[Warehouse]):
        try:
            wanted = partition_keys(warehouse, settings.query)
        except Exception as error:
            if not declared_sql.missing_relation(error):
                raise
            return dg.SkipReason(f"the `{name}` query reads a relation that is not built yet: {error}")
        current = set(context.instance.get_dynamic_partitions(name))
        added = [key for key in wanted if key not in current]
        removed = sorted(current - set(wanted))
        if not added and not removed:
            return dg.SkipReason(f"{len(current)} `{name}` partitions, all in step with the query")
        tick = int(context.cursor or 0) + 1  # run keys stay unique when a removed key comes back
        requests = list(_new_partition_runs(name, added, tick)) if settings.run_new_partitions else []
        context.log.info(f"{name}: adding {added}, deleting {removed}")
        return dg.SensorResult(
            run_requests=requests,
            cursor=str(tick),
            dynamic_partitions_requests=[
                *([partitions_request(name, added, add=True)] if added else []),
                *([partitions_request(name, removed, add=False)] if removed else []),
            ],
        )

    return _sensor


def partitions_request(name: str, keys: list[str], add: bool):
    definition = dg.DynamicPartitionsDefinition(name=name)
    return definition.build_add_request(keys) if add else definition.build_delete_request(keys)


# A first tick over thousands of customers queues thousands of runs: they wait behind every other run
# (lower priority) and the instance's run queue caps how many run at once (tag `platform/fanout`).
FANOUT_TAG = "platform/fanout"
FANOUT_PRIORITY = "-1"


def _new_partition_runs(name: str, keys: list[str], tick: int) -> Iterator[dg.RunRequest]:
    tags = {FANOUT_TAG: name, "dagster/priority": FANOUT_PRIORITY}
    for key in keys:
        yield dg.RunRequest(partition_key=key, run_key=f"{key}@{tick}", tags=tags)
