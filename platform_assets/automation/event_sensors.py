"""Event-driven ingestion: file drops in the landing folder and the application database's watermark.

Both read the outside world only at tick time (never at definitions load), keep a cursor, and give every
run request a run key derived from what changed, so a repeated tick never launches twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from platform_assets import environment

LANDING_PREFIX = ("raw", "landing")
APP_DB_PREFIX = ("raw", "app_db")
LANDING_SUFFIXES = (".csv", ".jsonl", ".json", ".csv.gz", ".jsonl.gz")
TRIGGER_TAG = "platform/trigger"


def stream_keys(repository_def: dg.RepositoryDefinition, prefix: tuple[str, ...]) -> dict[str, dg.AssetKey]:
    """Stream name -> asset key, for the loaded assets `[*prefix, <stream>]`."""
    return {key.path[-1]: key for key in repository_def.assets_defs_by_key if tuple(key.path[:-1]) == prefix}


# ---------------------------------------------------------------- landing folder


@dataclass(frozen=True)
class FolderSignature:
    """What identifies the content of an append-only stream folder: files, bytes, newest change."""

    files: int
    size: int
    mtime_ns: int

    def token(self) -> str:
        return f"{self.files}-{self.size}-{self.mtime_ns}"


def folder_signature(folder: Path, settle_seconds: float, now: float) -> FolderSignature | None:
    """The folder's signature, or None while a file is still being written (changed < settle_seconds)."""
    files = [
        path
        for path in folder.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.name.endswith(LANDING_SUFFIXES)
    ]
    stats = [path.stat() for path in files]
    if any(now - stat.st_mtime < settle_seconds for stat in stats):
        return None
    return FolderSignature(
        files=len(stats),
        size=sum(stat.st_size for stat in stats),
        mtime_ns=max((stat.st_mtime_ns for stat in stats), default=0),
    )


def landing_changes(
    landing_dir: Path, cursor: Mapping[str, str], settle_seconds: float, now: float | None = None
) -> dict[str, str]:
    """Streams whose folder changed since the cursor -> their new signature token."""
    if not landing_dir.is_dir():
        return {}
    now = time.time() if now is None else now
    changed = {}
    for folder in sorted(p for p in landing_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        signature = folder_signature(folder, settle_seconds, now)
        if signature is not None and signature.files and cursor.get(folder.name) != signature.token():
            changed[folder.name] = signature.token()
    return changed


def build_landing_sensor(
    name: str = "landing_file_drop",
    minimum_interval_seconds: int = 30,
    settle_seconds: float = 5.0,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        target=dg.AssetSelection.key_prefixes(list(LANDING_PREFIX)),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Starts ingestion of exactly the landing streams whose folder got new or grown files "
        "(<landing_dir>/<stream>/*.csv|.jsonl -> asset raw/landing/<stream>).",
        tags={"layer": "ingestion"},
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        landing_dir = environment.current().landing_dir
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        changed = landing_changes(landing_dir, cursor, settle_seconds)
        keys = stream_keys(context.repository_def, LANDING_PREFIX)
        unknown = sorted(set(changed) - set(keys))
        if unknown:
            # Kept out of the cursor, so they trigger once an asset exists for them.
            context.log.warning(
                f"{landing_dir}: folders {unknown} have files but no asset raw/landing/<stream>; "
                "declare the stream in defs/ingestion/sources.yaml."
            )
        triggered = {stream: token for stream, token in changed.items() if stream in keys}
        if not triggered:
            return dg.SkipReason(f"no new files in {landing_dir}")
        run_key = "landing:" + ",".join(f"{s}@{t}" for s, t in sorted(triggered.items()))
        request = dg.RunRequest(
            run_key=run_key,
            asset_selection=[keys[stream] for stream in sorted(triggered)],
            tags={TRIGGER_TAG: "landing_file_drop"},
        )
        context.log.info(f"new files for streams {sorted(triggered)}")
        return dg.SensorResult(
            run_requests=[request], cursor=json.dumps({**cursor, **triggered}, sort_keys=True)
        )

    return _sensor


# ---------------------------------------------------------------- application database watermark


def read_watermarks(
    db_url: str, schema: str, tables: Iterable[str], column: str = "updated_at"
) -> dict[str, str]:
    """max(<column>) per table, as ISO text; tables that do not exist are left out."""
    import psycopg2  # imported at tick time: definitions load never touches the database
    from psycopg2 import sql

    found: dict[str, str] = {}
    with psycopg2.connect(db_url, connect_timeout=10) as connection, connection.cursor() as cursor:
        cursor.execute(
            "select table_name from information_schema.columns where table_schema = %s and column_name = %s",
            (schema, column),
        )
        existing = {row[0] for row in cursor.fetchall()}
        for table in tables:
            if table not in existing:
                continue
            cursor.execute(
                sql.SQL("select max({}) from {}.{}").format(
                    sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table)
                )
            )
            (high,) = cursor.fetchone()
            found[table] = high.isoformat() if hasattr(high, "isoformat") else str(high)
    connection.close()
    return found


def build_watermark_sensor(
    name: str = "app_db_watermark",
    schema: str = "app",
    tables: Mapping[str, str] | None = None,
    column: str = "updated_at",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """`tables` maps stream -> table where they differ; by default a stream reads the table of its name."""

    @dg.sensor(
        name=name,
        target=dg.AssetSelection.key_prefixes(list(APP_DB_PREFIX)),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Watches max({column}) of the application database (PLATFORM_APP_DB_URL, schema "
        f"{schema}); when it moves, records an observation on raw/app_db/<stream> and ingests that stream.",
        tags={"layer": "ingestion"},
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        db_url = environment.current().app_db_url
        if not db_url:
            return dg.SkipReason("PLATFORM_APP_DB_URL is not set: no application database to watch")
        keys = stream_keys(context.repository_def, APP_DB_PREFIX)
        if not keys:
            return dg.SkipReason("no raw/app_db/<stream> assets are loaded")
        table_of = {stream: (tables or {}).get(stream, stream) for stream in keys}
        marks = read_watermarks(db_url, schema, set(table_of.values()), column)
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        moved = {
            stream: marks[table]
            for stream, table in table_of.items()
            if table in marks and cursor.get(stream) != marks[table]
        }
        if not moved:
            return dg.SkipReason(f"watermarks unchanged: {marks}")
        observations = [
            dg.AssetObservation(
                asset_key=keys[stream],
                metadata={
                    "source_table": f"{schema}.{table_of[stream]}",
                    f"source_max_{column}": mark,
                    "previous_watermark": cursor.get(stream, "none"),
                },
            )
            for stream, mark in sorted(moved.items())
        ]
        request = dg.RunRequest(
            run_key="app_db:" + ",".join(f"{s}@{m}" for s, m in sorted(moved.items())),
            asset_selection=[keys[stream] for stream in sorted(moved)],
            tags={TRIGGER_TAG: "app_db_watermark"},
        )
        return dg.SensorResult(
            run_requests=[request],
            asset_events=observations,
            cursor=json.dumps({**cursor, **moved}, sort_keys=True),
        )

    return _sensor
