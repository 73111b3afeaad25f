"""The cycle report: what landed where, printed after `python3 tasks.py cycle` (and the CI smoke run)."""

from __future__ import annotations

from collections import defaultdict

from platform_assets import environment
from platform_assets.warehouse import connect_duckdb, quote_identifier

# Warehouse schemas by layer; anything else is listed under "other".
LAYERS: dict[str, tuple[str, ...]] = {
    "ingestion (raw)": ("raw_",),
    "staging": ("staging",),
    "marts": ("finance", "marketing", "sales"),
    "activation models": ("activation",),
    "sync state": ("platform_sync",),
}


def _layer_of(schema: str) -> str:
    for layer, prefixes in LAYERS.items():
        if any(schema.startswith(prefix) for prefix in prefixes):
            return layer
    return "other"


def table_counts() -> dict[str, list[tuple[str, int]]]:
    """Row counts of every warehouse table, grouped by layer."""
    env = environment.current()
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
            by_layer[_layer_of(schema)].append((f"{schema}.{table}", int(count)))
    finally:
        connection.close()
    return dict(by_layer)


def render(counts: dict[str, list[tuple[str, int]]]) -> str:
    env = environment.current()
    lines = [f"Warehouse: {env.duckdb_path}", f"Landing folder: {env.landing_dir}"]
    for layer in [*LAYERS, "other"]:
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
