"""The cycle report: what landed where, printed after `python3 tasks.py cycle` (and the CI smoke run)."""

from __future__ import annotations

from collections import defaultdict

from platform_assets import dbt_manifest, environment
from platform_assets.components.salesforce_syncs import SYNC_STATE_SCHEMA
from platform_assets.warehouse import connect_duckdb, quote_identifier

LAYERS = ("ingestion (raw)", "dbt models", "sync state", "other")


def _layer_of(schema: str, dbt_schemas: set[str]) -> str:
    """Raw schemas are `raw_<source>`; dbt's are those of the prepared manifest's models."""
    if schema.startswith("raw_"):
        return "ingestion (raw)"
    if schema in dbt_schemas:
        return "dbt models"
    return "sync state" if schema == SYNC_STATE_SCHEMA else "other"


def table_counts() -> dict[str, list[tuple[str, int]]]:
    """Row counts of every warehouse table, grouped by layer."""
    env = environment.current()
    manifest = dbt_manifest.read_if_prepared()
    dbt_schemas = {model.schema for model in manifest.models.values()} if manifest else set()
    by_layer: dict[str, list[tuple[str, int]]] = defaultdict(list)
    connection = connect_duckdb(env.duckdb_path, read_only=True)
    try:
        tables = connection.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('information_schema', 'pg_catalog', 'main') "
            "order by table_schema, table_name"
        ).fetchall()
        for schema, table in tables:
            qualified = f"{quote_identifier(schema)}.{quote_identifier(table)}"
            (count,) = connection.execute(f"select count(*) from {qualified}").fetchone()
            by_layer[_layer_of(schema, dbt_schemas)].append((f"{schema}.{table}", int(count)))
    finally:
        connection.close()
    return dict(by_layer)


def render(counts: dict[str, list[tuple[str, int]]]) -> str:
    env = environment.current()
    lines = [f"Warehouse: {env.duckdb_path}", f"Landing: {env.landing_url}"]
    for layer in LAYERS:
        rows = counts.get(layer)
        if not rows:
            continue
        total = sum(count for _, count in rows)
        lines.append(f"\n{layer}: {len(rows)} tables, {total:,} rows")
        width = max(len(name) for name, _ in rows)
        lines.extend(f"  {name:<{width}}  {count:>10,}" for name, count in rows)
    lines.append(f"\nDagster instance: {env.dagster_home} (open it with `python3 tasks.py ui`)")
    return "\n".join(lines)


def main() -> None:
    env = environment.current()
    if not env.is_local:
        raise SystemExit("The cycle report reads the local DuckDB warehouse; PLATFORM_ENV is " + env.mode)
    if not env.duckdb_path.exists():
        raise SystemExit(f"No warehouse at {env.duckdb_path}: run `python3 tasks.py cycle` first.")
    print(render(table_counts()))


if __name__ == "__main__":
    main()
