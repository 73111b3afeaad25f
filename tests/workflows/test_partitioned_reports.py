"""Per-customer reports: a dynamic partition set kept in step with SQL, one run per partition."""

from __future__ import annotations

import dagster as dg
import pytest

from platform_assets.components.partitioned_reports import (
    PartitionSetSettings,
    ReportsConfigError,
    ReportSettings,
    build_reports_defs,
)
from platform_assets.warehouse import DuckDBWarehouse

from .conftest import sql

# A shape the sample company does not have: tenants of a shop, with their orders.
SETS = {"tenants": PartitionSetSettings(query="select tenant_id from shop.tenants where active order by 1")}
REPORTS = {
    "tenant_revenue": ReportSettings.model_validate(
        {
            "partition_set": "tenants",
            "schema": "customer_reports",
            "deps": ["shop/orders"],
            # The cast fails for a tenant whose amounts are not numbers: one customer's bad data.
            "sql": "select count(*) as orders, sum(cast(amount as decimal(12, 2))) as revenue "
            "from shop.orders where tenant_id = :partition_key",
        }
    )
}


@pytest.fixture
def shop(warehouse: DuckDBWarehouse) -> DuckDBWarehouse:
    sql(
        warehouse,
        "create schema shop",
        "create table shop.tenants (tenant_id varchar, active boolean)",
        "insert into shop.tenants values ('acme', true), ('globex', true), ('initech', false)",
        "create table shop.orders (tenant_id varchar, amount varchar)",
        "insert into shop.orders values ('acme', '10.50'), ('acme', '4.50'), ('globex', '7'), "
        "('hooli', 'n/a')",
    )
    return warehouse


def _defs(warehouse: DuckDBWarehouse) -> dg.Definitions:
    defs = build_reports_defs(SETS, REPORTS, "reports/defs.yaml")
    return dg.Definitions.merge(defs, dg.Definitions(resources={"warehouse": warehouse}))


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    """One sensor tick, its partition requests applied to the instance as the sensor daemon does."""
    sensor = defs.resolve_sensor_def("tenants_partitions")
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"warehouse": defs.resources["warehouse"]},
    )
    result = sensor(context)
    if isinstance(result, dg.SkipReason):
        return dg.SensorResult(skip_reason=result)
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, key: str) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("tenants_reports")
    return job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)


def test_the_sensor_adds_new_keys_and_deletes_removed_ones(
    shop: DuckDBWarehouse, instance: dg.DagsterInstance
) -> None:
    defs = _defs(shop)
    first = _tick(defs, instance, None)
    assert instance.get_dynamic_partitions("tenants") == ["acme", "globex"]
    assert sorted(r.partition_key for r in first.run_requests or []) == ["acme", "globex"]
    # Fan-out runs queue behind every other run, and the run queue caps them by this tag.
    assert {(r.tags["platform/fanout"], r.tags["dagster/priority"]) for r in first.run_requests or []} == {
        ("tenants", "-1")
    }

    assert _tick(defs, instance, first.cursor).skip_reason is not None  # nothing changed: nothing to do

    sql(
        shop,
        "insert into shop.tenants values ('hooli', true)",
        "update shop.tenants set active = false where tenant_id = 'acme'",
    )
    second = _tick(defs, instance, first.cursor)
    assert sorted(instance.get_dynamic_partitions("tenants")) == ["globex", "hooli"]
    assert [r.partition_key for r in second.run_requests or []] == ["hooli"]  # only the new key runs

    # A key that comes back is added again, with a run key the first run did not use.
    sql(shop, "update shop.tenants set active = true where tenant_id = 'acme'")
    third = _tick(defs, instance, second.cursor)
    assert sorted(instance.get_dynamic_partitions("tenants")) == ["acme", "globex", "hooli"]
    first_acme = [r.run_key for r in first.run_requests or [] if r.partition_key == "acme"]
    assert [r.partition_key for r in third.run_requests or []] == ["acme"]
    assert [r.run_key for r in third.run_requests or []] != first_acme


def test_a_failing_customer_fails_only_its_own_run(
    shop: DuckDBWarehouse, instance: dg.DagsterInstance
) -> None:
    defs = _defs(shop)
    sql(shop, "update shop.tenants set active = true")
    sql(shop, "insert into shop.tenants values ('hooli', true)")
    _tick(defs, instance, None)
    results = {key: _run(defs, instance, key) for key in instance.get_dynamic_partitions("tenants")}

    assert {key: result.success for key, result in results.items()} == {
        "acme": True,
        "globex": True,
        "hooli": False,
        "initech": True,
    }
    rows = sql(shop, "select partition_key, orders, revenue from customer_reports.tenant_revenue order by 1")
    assert [(key, orders, float(revenue or 0)) for key, orders, revenue in rows] == [
        ("acme", 2, 15.0),
        ("globex", 1, 7.0),
        ("initech", 0, 0.0),
    ]
    # Re-running a partition replaces its rows: never duplicated.
    assert _run(defs, instance, "acme").success
    assert sql(shop, "select count(*) from customer_reports.tenant_revenue where partition_key = 'acme'") == [
        (1,)
    ]
    materialized = instance.get_materialized_partitions(dg.AssetKey(["customer_reports", "tenant_revenue"]))
    assert materialized == {"acme", "globex", "initech"}


def test_declaration_mistakes_fail_load_naming_the_file_and_key() -> None:
    bad_set = {"r": REPORTS["tenant_revenue"].model_copy(update={"partition_set": "nope"})}
    with pytest.raises(ReportsConfigError, match=r"reports/defs.yaml: reports.r.partition_set: 'nope'"):
        build_reports_defs(SETS, bad_set, "reports/defs.yaml")
    bad_param = {"r": REPORTS["tenant_revenue"].model_copy(update={"sql": "select :tenant"})}
    with pytest.raises(ValueError, match=r"reports.r.sql: unknown parameter\(s\) :tenant"):
        build_reports_defs(SETS, bad_param, "reports/defs.yaml")


def test_the_sensor_skips_until_its_query_tables_are_built(
    warehouse: DuckDBWarehouse, instance: dg.DagsterInstance
) -> None:
    defs = _defs(warehouse)
    skipped = _tick(defs, instance, None)
    assert "not built yet" in str(skipped.skip_reason) and "shop.tenants" in str(skipped.skip_reason)
    assert instance.get_dynamic_partitions("tenants") == []
