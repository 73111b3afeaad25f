"""The application database: PostgreSQL schema `app` with workspaces, users and subscriptions.

Idempotent: rows are inserted with ON CONFLICT DO NOTHING, so a second run with the same seed and scale
changes nothing (and moves no `updated_at`, which the `app_db` extractor replicates on).
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import psycopg2

from local_stack.sample_company.landing import STREAMS
from local_stack.sample_company.model import Core, iso, iter_cores

SCHEMA = "app"
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.workspaces (
  workspace_id text PRIMARY KEY, name text NOT NULL, domain text, industry text, employee_count integer,
  country text, plan text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.users (
  user_id text PRIMARY KEY, workspace_id text NOT NULL REFERENCES {SCHEMA}.workspaces, email text NOT NULL,
  first_name text, last_name text, title text, role text, created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.subscriptions (
  subscription_id text PRIMARY KEY, workspace_id text NOT NULL REFERENCES {SCHEMA}.workspaces,
  plan text NOT NULL, seats integer NOT NULL, monthly_amount numeric(12, 2) NOT NULL, status text NOT NULL,
  started_at timestamptz NOT NULL, canceled_at timestamptz, updated_at timestamptz NOT NULL);
"""
# The application's tables carry the landing exports' columns; users also record when they changed.
COLUMNS = {
    "workspaces": STREAMS["workspaces"].columns,
    "users": (*STREAMS["users"].columns, "updated_at"),
    "subscriptions": STREAMS["subscriptions"].columns,
}
BATCH = 5000


def _rows(core: Core) -> dict[str, list[tuple]]:
    sub = core.subscription
    return {
        "workspaces": [
            (
                core.workspace_id,
                core.name,
                core.domain,
                core.industry,
                core.employee_count,
                core.country,
                core.plan,
                iso(core.created_at),
                iso(core.updated_at),
            )
        ],
        "users": [
            (
                u.user_id,
                core.workspace_id,
                u.email,
                u.first_name,
                u.last_name,
                u.title,
                u.role,
                iso(u.created_at),
                iso(u.created_at),
            )
            for u in core.users
        ],
        "subscriptions": [
            (
                sub.subscription_id,
                core.workspace_id,
                sub.plan,
                sub.seats,
                sub.monthly_amount,
                sub.status,
                iso(sub.started_at),
                iso(sub.canceled_at) if sub.canceled_at else None,
                iso(sub.updated_at),
            )
        ],
    }


def _copy(cursor, table: str, rows: Iterable[tuple]) -> None:
    """COPY into a temporary table, then insert what is not there yet (idempotent and fast)."""
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    buffer.seek(0)
    columns = ", ".join(COLUMNS[table])
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS incoming_{table} (LIKE {SCHEMA}.{table}) ON COMMIT DROP")
    cursor.copy_expert(f"COPY incoming_{table} ({columns}) FROM STDIN", buffer)
    cursor.execute(
        f"INSERT INTO {SCHEMA}.{table} ({columns}) SELECT {columns} FROM incoming_{table} "
        "ON CONFLICT DO NOTHING"
    )
    cursor.execute(f"TRUNCATE incoming_{table}")


def write_app_db(url: str, scale: float = 1.0, seed: int = 42) -> dict[str, int]:
    """Create schema `app` in the database at `url` and insert the company's rows; returns rows per table."""
    counts = dict.fromkeys(COLUMNS, 0)
    pending: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(DDL)
            for core in iter_cores(scale, seed):
                for table, rows in _rows(core).items():
                    pending[table].extend(rows)
                    counts[table] += len(rows)
                if len(pending["users"]) >= BATCH:
                    for table in COLUMNS:  # parents first: the foreign keys are checked per statement
                        _copy(cursor, table, pending[table])
                        pending[table].clear()
            for table in COLUMNS:
                _copy(cursor, table, pending[table])
    finally:
        connection.close()
    return counts
