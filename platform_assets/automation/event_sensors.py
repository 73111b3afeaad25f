"""Event-driven ingestion of a declared source: file drops in a folder, or a database table's watermark.

defs/automation/defs.yaml declares which source each sensor starts (`sensors.file_drops`,
`sensors.watermarks`); a sensor targets the source's stream assets `raw/<source>/<stream>`. Its folder or
database URL is a template over the platform environment (platform_assets/env_templates.py), resolved at
tick time: sensors read the outside world only then (never at definitions load), keep a cursor, and give
every run request a run key derived from what changed, so a repeated tick never launches twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import fsspec
from fsspec.implementations.local import LocalFileSystem

from platform_assets import environment
from platform_assets.env_templates import SettingTemplate, TemplateError, parse_settings, resolve_settings

RAW = "raw"
DROP_SUFFIXES = (".csv", ".jsonl", ".json", ".csv.gz", ".jsonl.gz")
TRIGGER_TAG = "platform/trigger"
_USERINFO = re.compile(r"//[^/@]*@")


def stream_keys(repository_def: dg.RepositoryDefinition, source: str) -> dict[str, dg.AssetKey]:
    """Stream name -> asset key, for the loaded assets `raw/<source>/<stream>`."""
    prefix = (RAW, source)
    return {key.path[-1]: key for key in repository_def.assets_defs_by_key if tuple(key.path[:-1]) == prefix}


def latest_load_start(instance: dg.DagsterInstance, key: dg.AssetKey) -> float | None:
    """When the run that last materialized `key` started: its extract read the source after that."""
    event = instance.get_latest_materialization_event(key)
    if event is None or not event.run_id:
        return None
    record = instance.get_run_record_by_id(event.run_id)
    return record.start_time if record is not None else None


def already_loaded(instance: dg.DagsterInstance, key: dg.AssetKey, changed_at: float) -> bool:
    """Whether a run that started after the change (e.g. the cycle) already materialized the stream: then
    the change is in the cursor without a run, and a sensor's first tick after a cycle re-ingests nothing."""
    started = latest_load_start(instance, key)
    return started is not None and started > changed_at


def _split_loaded(
    instance: dg.DagsterInstance,
    keys: Mapping[str, dg.AssetKey],
    changed: Mapping[str, str],
    changed_at: Mapping[str, float | None],
) -> tuple[dict[str, str], dict[str, str]]:
    """(streams to ingest, streams a run already loaded) -> cursor tokens."""
    loaded = {
        stream: token
        for stream, token in changed.items()
        if (when := changed_at.get(stream)) is not None and already_loaded(instance, keys[stream], when)
    }
    return {s: t for s, t in changed.items() if s not in loaded}, loaded


# ---------------------------------------------------------------- file drops


@dataclass(frozen=True)
class FolderSignature:
    """What identifies the content of an append-only stream folder: files, bytes, a digest of each file's
    name, size and version (ETag or mtime), and the newest change."""

    files: int
    size: int
    digest: str
    mtime_ns: int

    def token(self) -> str:
        return f"{self.files}-{self.size}-{self.digest}-{self.mtime_ns}"

    @staticmethod
    def newest_change(token: str) -> float:
        """The newest file's modification time (epoch seconds) of a `token()`."""
        return int(token.rsplit("-", 1)[1]) / 1e9


@dataclass(frozen=True)
class DropFile:
    """One file as listed: its path relative to the watched root, size, version and modification time."""

    relative: str
    size: int
    version: str
    mtime: float


def _mtime(info: Mapping) -> float:
    """A listing entry's modification time: `mtime` on a local disk, `LastModified` on S3."""
    if "LastModified" in info:
        return info["LastModified"].timestamp()
    return float(info.get("mtime") or 0)


def list_drops(
    url: str, storage_options: Mapping[str, str] | None = None, suffixes: tuple[str, ...] = DROP_SUFFIXES
) -> tuple[list[DropFile], bool]:
    """The drop files at `<url>/<stream>/<file>` (one listing of the prefix; dot-names left out), and
    whether the store's objects are atomic (an object store: visible only once its upload completed)."""
    options = {k: v for k, v in (storage_options or {}).items() if v} if "://" in url else {}
    fs, root = fsspec.core.url_to_fs(url, **options)
    fs.invalidate_cache()  # fsspec reuses filesystem instances: never read a previous tick's listing
    try:
        listed = fs.find(root, detail=True)
    except FileNotFoundError:
        listed = {}
    base = root.rstrip("/") + "/"
    drops = []
    for path, info in listed.items():
        relative = path[len(base) :] if path.startswith(base) else ""
        parts = relative.split("/")
        if len(parts) != 2 or any(part.startswith(".") for part in parts) or not relative.endswith(suffixes):
            continue  # deeper files are not the streams'; dot-names are drops still being written
        version = str(info.get("ETag") or info.get("mtime") or "")
        drops.append(DropFile(relative, int(info.get("size") or 0), version, _mtime(info)))
    return drops, not isinstance(fs, LocalFileSystem)


def folder_signature(files: Iterable[DropFile], settle_seconds: float, now: float) -> FolderSignature | None:
    """The signature of one stream's files, or None while one is still being written (changed less than
    `settle_seconds` ago)."""
    files = sorted(files, key=lambda drop: drop.relative)
    if any(now - drop.mtime < settle_seconds for drop in files):
        return None
    digest = hashlib.sha1(
        "\n".join(f"{d.relative}:{d.size}:{d.version}" for d in files).encode(), usedforsecurity=False
    ).hexdigest()[:12]
    return FolderSignature(
        files=len(files),
        size=sum(drop.size for drop in files),
        digest=digest,
        mtime_ns=int(max((drop.mtime for drop in files), default=0) * 1e9),
    )


def drop_changes(
    url: str | Path,
    cursor: Mapping[str, str],
    settle_seconds: float,
    now: float | None = None,
    suffixes: tuple[str, ...] = DROP_SUFFIXES,
    storage_options: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Streams (sub-folders or sub-prefixes) whose files changed since the cursor -> their new token.

    Locally a file changed within `settle_seconds` is still being written; an object store shows an object
    only once its upload completed (a multipart upload in progress is not listed), so nothing settles there.
    """
    drops, atomic = list_drops(str(url), storage_options, suffixes)
    now = time.time() if now is None else now
    by_stream: dict[str, list[DropFile]] = {}
    for drop in drops:
        by_stream.setdefault(drop.relative.split("/", 1)[0], []).append(drop)
    changed = {}
    for stream, files in sorted(by_stream.items()):
        signature = folder_signature(files, 0 if atomic else settle_seconds, now)
        if signature is not None and cursor.get(stream) != signature.token():
            changed[stream] = signature.token()
    return changed


def build_file_drop_sensor(
    source: str,
    folder: str,
    minimum_interval_seconds: int = 30,
    settle_seconds: float = 5.0,
    suffixes: tuple[str, ...] = DROP_SUFFIXES,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    where: str = "folder",
    storage_options: Mapping[str, str | Mapping[str, str]] | None = None,
) -> dg.SensorDefinition:
    """`<source>_file_drop`: ingests the streams of `source` whose `<folder>/<stream>/` got files.

    `folder` is a template (e.g. "{landing_url}"): a local folder or an object-store prefix
    (s3://bucket/prefix); `storage_options` are fsspec's options for it (e.g. endpoint_url, key, secret),
    templates too; `where` names the declaration in error messages.
    """
    name = f"{source}_file_drop"
    folder_template = SettingTemplate.parse(folder, where)
    option_templates = parse_settings(storage_options or {}, where.rsplit(".", 1)[0] + ".storage_options")

    @dg.sensor(
        name=name,
        target=dg.AssetSelection.key_prefixes([RAW, source]),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Starts ingestion of exactly the {source} streams whose folder got new or grown files "
        f"({folder}/<stream>/*{'|'.join(suffixes)} -> asset {RAW}/{source}/<stream>).",
        tags={"layer": "ingestion"},
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        env = environment.current()
        try:
            drop_dir = folder_template.require(env)
            options = resolve_settings(option_templates, env)
        except TemplateError as unset:
            return dg.SkipReason(f"no folder to watch: {unset}")
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        changed = drop_changes(drop_dir, cursor, settle_seconds, suffixes=suffixes, storage_options=options)
        keys = stream_keys(context.repository_def, source)
        unknown = sorted(set(changed) - set(keys))
        if unknown:
            # Kept out of the cursor, so they trigger once an asset exists for them.
            context.log.warning(
                f"{drop_dir}: folders {unknown} have files but no asset {RAW}/{source}/<stream>; "
                "declare the stream in defs/ingestion/sources.yaml."
            )
        known = {stream: token for stream, token in changed.items() if stream in keys}
        changed_at = {stream: FolderSignature.newest_change(token) for stream, token in known.items()}
        triggered, loaded = _split_loaded(context.instance, keys, known, changed_at)
        if loaded:
            context.log.info(f"already loaded by a later run, not ingested again: {sorted(loaded)}")
        if not triggered:
            cursor_now = json.dumps({**cursor, **loaded}, sort_keys=True)
            return dg.SensorResult(skip_reason=f"no new files in {drop_dir}", cursor=cursor_now)
        request = dg.RunRequest(
            run_key=f"{source}:" + ",".join(f"{s}@{t}" for s, t in sorted(triggered.items())),
            asset_selection=[keys[stream] for stream in sorted(triggered)],
            tags={TRIGGER_TAG: name},
        )
        context.log.info(f"new files for streams {sorted(triggered)}")
        return dg.SensorResult(
            run_requests=[request], cursor=json.dumps({**cursor, **loaded, **triggered}, sort_keys=True)
        )

    return _sensor


# ---------------------------------------------------------------- database watermark


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


def _epoch(mark: str) -> float | None:
    """A watermark as epoch seconds (naive timestamps are taken as UTC); None when it is not a time."""
    try:
        moment = datetime.fromisoformat(mark)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def build_watermark_sensor(
    source: str,
    database_url: str,
    schema: str,
    tables: Mapping[str, str] | None = None,
    column: str = "updated_at",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    where: str = "database_url",
) -> dg.SensorDefinition:
    """`<source>_watermark`: ingests the streams of `source` whose table's max(`column`) moved.

    `database_url` is a template (e.g. "{env:APP_DB_URL}"); while it has no value the sensor skips, saying
    what to set. `tables` maps stream -> table where they differ; by default a stream reads its namesake.
    """
    name = f"{source}_watermark"
    url_template = SettingTemplate.parse(database_url, where)
    shown_url = _USERINFO.sub("//***@", database_url)  # in case a literal URL carries a password

    @dg.sensor(
        name=name,
        target=dg.AssetSelection.key_prefixes([RAW, source]),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Watches max({column}) of the tables in schema {schema} of {shown_url}; when it "
        f"moves, records an observation on {RAW}/{source}/<stream> and ingests that stream.",
        tags={"layer": "ingestion"},
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            db_url = url_template.require(environment.current())
        except TemplateError as unset:
            return dg.SkipReason(f"no database to watch: {unset}")
        keys = stream_keys(context.repository_def, source)
        if not keys:
            return dg.SkipReason(f"no {RAW}/{source}/<stream> assets are loaded")
        table_of = {stream: (tables or {}).get(stream, stream) for stream in keys}
        marks = read_watermarks(db_url, schema, set(table_of.values()), column)
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        moved = {
            stream: marks[table]
            for stream, table in table_of.items()
            if table in marks and cursor.get(stream) != marks[table]
        }
        changed_at = {stream: _epoch(mark) for stream, mark in moved.items()}
        moved, loaded = _split_loaded(context.instance, keys, moved, changed_at)
        if not moved:
            return dg.SensorResult(
                skip_reason=f"watermarks unchanged or already loaded: {marks}",
                cursor=json.dumps({**cursor, **loaded}, sort_keys=True),
            )
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
            run_key=f"{source}:" + ",".join(f"{s}@{m}" for s, m in sorted(moved.items())),
            asset_selection=[keys[stream] for stream in sorted(moved)],
            tags={TRIGGER_TAG: name},
        )
        return dg.SensorResult(
            run_requests=[request],
            asset_events=observations,
            cursor=json.dumps({**cursor, **loaded, **moved}, sort_keys=True),
        )

    return _sensor
