"""The landing-folder and application-database watermark sensors: what they trigger, and that repeated ticks
without change launch nothing."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from platform_assets import environment
from platform_assets.automation.event_sensors import build_file_drop_sensor, build_watermark_sensor
from platform_assets.components.automation import AutomationComponent

TEST_DB = "postgresql://postgres@127.0.0.1:5432/test"
APP_DB_URL = "{env:PLATFORM_APP_DB_URL}"


def _stream_assets(source: str, streams: list[str]) -> list[dg.AssetsDefinition]:
    specs = [
        dg.AssetSpec(["raw", source, stream], group_name=f"ingestion_{source}", tags={"layer": "ingestion"})
        for stream in streams
    ]

    @dg.multi_asset(name=f"meltano_{source}", specs=specs, can_subset=True)
    def _ingest(context) -> Iterator[dg.MaterializeResult]:
        for key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key)

    return [_ingest]


def _tick(
    sensor: dg.SensorDefinition, defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return sensor.evaluate_tick(context)


def _requested(result) -> list[list[str]]:
    return [
        sorted(key.to_user_string() for key in request.asset_selection) for request in result.run_requests
    ]


def _drop(folder: Path, name: str, text: str, age_seconds: float = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    old = time.time() - age_seconds
    os.utime(path, (old, old))
    return path


@pytest.fixture
def landing(local_platform: environment.PlatformEnvironment) -> Path:
    return local_platform.landing_dir


def test_landing_sensor_triggers_only_streams_whose_files_arrived(landing: Path) -> None:
    sensor = build_file_drop_sensor("landing", "{landing_dir}", settle_seconds=5)
    defs = dg.Definitions(
        assets=_stream_assets("landing", ["invoices", "campaigns", "signups"]), sensors=[sensor]
    )
    instance = dg.DagsterInstance.ephemeral()
    assert _tick(sensor, defs, instance, None).run_requests == [], "an empty landing folder triggers nothing"

    _drop(landing / "invoices", "2026-03-01.csv", "invoice_id\ninv_1\n")
    _drop(landing / "campaigns", "2026-03-01.csv", "campaign_id\ncmp_1\n")
    first = _tick(sensor, defs, instance, None)
    assert _requested(first) == [["raw/landing/campaigns", "raw/landing/invoices"]]
    assert first.run_requests[0].run_key

    again = _tick(sensor, defs, instance, first.cursor)
    assert again.run_requests == [] and again.skip_message, "the same files never trigger twice"

    _drop(landing / "invoices", "2026-03-02.csv", "invoice_id\ninv_2\n")
    second = _tick(sensor, defs, instance, again.cursor or first.cursor)
    assert _requested(second) == [["raw/landing/invoices"]], "only the stream with a new file"
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_first_tick_after_a_cycle_does_not_ingest_what_the_cycle_loaded(landing: Path) -> None:
    """Files that settled before a run of their stream started (the cycle) were read by it: the first tick
    puts them in the cursor without a run; a file that lands after the run started still triggers."""
    sensor = build_file_drop_sensor("partner", "{landing_dir}", settle_seconds=0)
    assets = _stream_assets("partner", ["orders", "refunds"])
    defs = dg.Definitions(assets=assets, sensors=[sensor])
    instance = dg.DagsterInstance.ephemeral()
    _drop(landing / "orders", "a.csv", "order_id\no_1\n", age_seconds=120)
    _drop(landing / "refunds", "a.csv", "refund_id\nr_1\n", age_seconds=120)
    assert dg.materialize(assets, instance=instance).success  # the cycle

    first = _tick(sensor, defs, instance, None)
    assert first.run_requests == [], "the cycle already loaded both folders"
    assert set(json.loads(first.cursor)) == {"orders", "refunds"}, "what the cycle loaded is remembered"

    _drop(landing / "refunds", "b.csv", "refund_id\nr_2\n", age_seconds=0)  # lands after the cycle started
    assert _requested(_tick(sensor, defs, instance, first.cursor)) == [["raw/partner/refunds"]]


def test_landing_sensor_sees_rows_appended_to_an_existing_file(landing: Path) -> None:
    sensor = build_file_drop_sensor("landing", "{landing_dir}", settle_seconds=5)
    defs = dg.Definitions(assets=_stream_assets("landing", ["signups"]))
    instance = dg.DagsterInstance.ephemeral()
    path = _drop(landing / "signups", "drop.jsonl", '{"signup_id": "sgn_1"}\n')
    first = _tick(sensor, defs, instance, None)
    with path.open("a") as handle:
        handle.write('{"signup_id": "sgn_2"}\n')
    old = time.time() - 60
    os.utime(path, (old, old + 1))
    assert _requested(_tick(sensor, defs, instance, first.cursor)) == [["raw/landing/signups"]]


def test_landing_sensor_waits_for_a_file_still_being_written(landing: Path) -> None:
    sensor = build_file_drop_sensor("landing", "{landing_dir}", settle_seconds=30)
    defs = dg.Definitions(assets=_stream_assets("landing", ["invoices"]))
    instance = dg.DagsterInstance.ephemeral()
    path = _drop(landing / "invoices", "big.csv", "invoice_id\n", age_seconds=0)
    assert _tick(sensor, defs, instance, None).run_requests == []
    os.utime(path, (time.time() - 60, time.time() - 60))
    assert _requested(_tick(sensor, defs, instance, None)) == [["raw/landing/invoices"]]


def test_landing_sensor_ignores_folders_without_an_asset_and_keeps_them_pending(landing: Path) -> None:
    sensor = build_file_drop_sensor("landing", "{landing_dir}", settle_seconds=0)
    defs = dg.Definitions(assets=_stream_assets("landing", ["invoices"]))
    instance = dg.DagsterInstance.ephemeral()
    _drop(landing / "unknown_stream", "a.csv", "x\n1\n")
    result = _tick(sensor, defs, instance, None)
    assert result.run_requests == []
    assert "unknown_stream" not in (result.cursor or ""), (
        "kept out of the cursor so it triggers once declared"
    )


def test_sensors_do_not_touch_external_systems_at_definitions_load(
    local_platform: environment.PlatformEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_APP_DB_URL", "postgresql://nobody@127.0.0.1:1/none")
    environment.current.cache_clear()
    sensor = build_watermark_sensor("app_db", APP_DB_URL, schema="app")
    defs = dg.Definitions(assets=_stream_assets("app_db", ["workspaces"]), sensors=[sensor])
    dg.Definitions.validate_loadable(defs)  # building it never connected (port 1 would refuse)
    with pytest.raises(Exception, match=r"(?i)connect|refused"):
        _tick(sensor, defs, dg.DagsterInstance.ephemeral(), None)


# ---------------------------------------------------------------- PostgreSQL watermark


def _postgres_reachable() -> bool:
    try:
        import psycopg2

        psycopg2.connect(TEST_DB, connect_timeout=2).close()
        return True
    except Exception:
        return False


@pytest.fixture
def app_db(
    local_platform: environment.PlatformEnvironment, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple]:
    if not _postgres_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (trust auth, database `test`); CI has it")
    import psycopg2

    schema = f"app_{uuid.uuid4().hex[:10]}"
    connection = psycopg2.connect(TEST_DB)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"create schema {schema}")
        for table in ("workspaces", "users"):
            cursor.execute(
                f"create table {schema}.{table} (id text primary key, updated_at timestamptz not null)"
            )
            cursor.execute(f"insert into {schema}.{table} values ('a', '2026-03-01T12:00:00Z')")
    monkeypatch.setenv("PLATFORM_APP_DB_URL", TEST_DB)
    environment.current.cache_clear()
    yield schema, connection
    with connection.cursor() as cursor:
        cursor.execute(f"drop schema {schema} cascade")
    connection.close()


@pytest.mark.postgres
def test_watermark_sensor_ingests_only_streams_whose_watermark_moved(app_db: tuple) -> None:
    schema, connection = app_db
    sensor = build_watermark_sensor("app_db", APP_DB_URL, schema=schema)
    defs = dg.Definitions(assets=_stream_assets("app_db", ["workspaces", "users", "subscriptions"]))
    instance = dg.DagsterInstance.ephemeral()

    first = _tick(sensor, defs, instance, None)
    assert _requested(first) == [["raw/app_db/users", "raw/app_db/workspaces"]], "subscriptions has no table"
    observed = {event.asset_key.to_user_string(): event.metadata for event in first.asset_events}
    assert set(observed) == {"raw/app_db/users", "raw/app_db/workspaces"}
    assert observed["raw/app_db/users"]["source_max_updated_at"].value.startswith("2026-03-01T12:00:00")

    for _ in range(2):
        repeat = _tick(sensor, defs, instance, first.cursor)
        assert repeat.run_requests == [] and not repeat.asset_events, (
            "an unchanged watermark triggers nothing"
        )

    with connection.cursor() as cursor:
        cursor.execute(f"update {schema}.users set updated_at = '2026-03-02T08:30:00Z'")
    moved = _tick(sensor, defs, instance, first.cursor)
    assert _requested(moved) == [["raw/app_db/users"]]
    assert moved.run_requests[0].run_key != first.run_requests[0].run_key
    assert [e.asset_key.to_user_string() for e in moved.asset_events] == ["raw/app_db/users"]
    assert _tick(sensor, defs, instance, moved.cursor).run_requests == []


@pytest.mark.postgres
def test_watermark_sensor_first_tick_skips_what_a_run_already_loaded(app_db: tuple) -> None:
    """Rows updated before a run of their stream started were extracted by it; a later update triggers."""
    schema, connection = app_db
    sensor = build_watermark_sensor("app_db", APP_DB_URL, schema=schema)
    assets = _stream_assets("app_db", ["workspaces", "users"])
    defs = dg.Definitions(assets=assets)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(assets, instance=instance).success  # the cycle, after the 2026-03-01 rows

    first = _tick(sensor, defs, instance, None)
    assert first.run_requests == [] and not first.asset_events, "the cycle already loaded both tables"
    assert set(json.loads(first.cursor)) == {"workspaces", "users"}

    with connection.cursor() as cursor:
        cursor.execute(f"update {schema}.users set updated_at = now() + interval '1 hour'")
    assert _requested(_tick(sensor, defs, instance, first.cursor)) == [["raw/app_db/users"]]


@pytest.mark.postgres
def test_watermark_sensor_skips_clearly_without_an_application_database(
    local_platform: environment.PlatformEnvironment,
) -> None:
    sensor = build_watermark_sensor("app_db", APP_DB_URL, schema="app")
    defs = dg.Definitions(assets=_stream_assets("app_db", ["workspaces"]))
    result = _tick(sensor, defs, dg.DagsterInstance.ephemeral(), None)
    assert result.run_requests == [] and "PLATFORM_APP_DB_URL" in (result.skip_message or "")


# ---------------------------------------------------------------- declared in defs/automation/defs.yaml


def _sources_file(tmp_path: Path, *names: str) -> Path:
    file = tmp_path / "sources.yaml"
    file.write_text("sources:\n" + "".join(f"  {name}: {{}}\n" for name in names))
    return file


def test_the_repo_declares_the_landing_and_app_db_sensors(local_platform) -> None:
    tree = dg.ComponentTree.for_project(environment.PROJECT_ROOT / "platform_assets")
    sensors = {sensor.name: sensor for sensor in tree.build_defs(Path("automation")).sensors or []}
    assert {"landing_file_drop", "app_db_watermark"} <= set(sensors)
    assert "PLATFORM_APP_DB_URL" in (sensors["app_db_watermark"].description or "")


def test_a_second_file_drop_source_gets_its_own_sensor_folder_and_streams(
    local_platform, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    partner_dir = tmp_path / "partner_drops"
    monkeypatch.setenv("PARTNER_DROP_DIR", str(partner_dir))
    component = AutomationComponent.model_validate(
        {
            "sources_file": str(_sources_file(tmp_path, "landing", "partner")),
            "sensors": {
                "file_drops": [
                    {"source": "landing", "folder": "{landing_dir}"},
                    {"source": "partner", "folder": "{env:PARTNER_DROP_DIR}", "settle_seconds": 0},
                ]
            },
            "meltano_state_job": False,
        }
    )
    automation = component.build_defs(dg.ComponentTree.for_test().load_context)
    sensor = next(s for s in automation.sensors or [] if s.name == "partner_file_drop")
    defs = dg.Definitions(
        assets=_stream_assets("landing", ["orders"]) + _stream_assets("partner", ["orders", "refunds"]),
        sensors=[sensor],
    )
    _drop(local_platform.landing_dir / "orders", "a.csv", "id\n1\n")
    _drop(partner_dir / "refunds", "a.csv", "id\n1\n")
    result = _tick(sensor, defs, dg.DagsterInstance.ephemeral(), None)
    assert _requested(result) == [["raw/partner/refunds"]], "only the partner folder, only its new stream"
    (request,) = result.run_requests
    assert request.run_key.startswith("partner:") and request.tags["platform/trigger"] == "partner_file_drop"

    monkeypatch.delenv("PARTNER_DROP_DIR")
    skipped = _tick(sensor, defs, dg.DagsterInstance.ephemeral(), None)
    assert skipped.run_requests == [] and "set the environment variable PARTNER_DROP_DIR" in (
        skipped.skip_message or ""
    )


@pytest.mark.parametrize(
    ("sensors", "expected"),
    [
        (
            {"file_drops": [{"source": "landing", "folder": "x"}, {"source": "partnr", "folder": "x"}]},
            r"defs\.yaml: sensors\.file_drops\[1\]\.source: 'partnr' is not a source .*landing, partner",
        ),
        (
            {"watermarks": [{"source": "crm", "database_url": "{env:CRM_URL}", "schema": "crm"}]},
            r"defs\.yaml: sensors\.watermarks\[0\]\.source: 'crm' is not a source",
        ),
        (
            {"file_drops": [{"source": "partner", "folder": "{drop_dir}"}]},
            r"defs\.yaml: sensors\.file_drops\[0\]\.folder: unknown placeholder \{drop_dir\}",
        ),
    ],
)
def test_unknown_sources_and_placeholders_fail_load_naming_defs_yaml_and_the_key(
    local_platform, tmp_path: Path, sensors: dict, expected: str
) -> None:
    component = AutomationComponent.model_validate(
        {"sources_file": str(_sources_file(tmp_path, "landing", "partner")), "sensors": sensors}
    )
    with pytest.raises(ValueError, match=expected):
        component.build_defs(dg.ComponentTree.for_test().load_context)


# ---------------------------------------------------------------- object store (the local S3 sandbox)


@pytest.fixture
def bucket(local_platform, s3_sandbox: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, object]:
    """A fresh bucket on the loopback S3 server, selected as the landing URL with a nested prefix."""
    from local_stack.sandbox.s3 import client

    name = f"drops-{uuid.uuid4().hex[:12]}"
    s3 = client(s3_sandbox)
    s3.create_bucket(Bucket=name)
    monkeypatch.setenv("PLATFORM_LANDING_URL", f"s3://{name}/{S3_PREFIX}")
    monkeypatch.setenv("PLATFORM_S3_ENDPOINT_URL", s3_sandbox)
    environment.current.cache_clear()
    return name, s3


S3_PREFIX = "teams/partners/drops"
S3_OPTIONS = {"endpoint_url": "{s3_endpoint_url}", "key": "{SANDBOX_S3_ACCESS_KEY_ID}", "secret": "x"}


def test_s3_sensor_lists_the_prefix_and_launches_only_the_streams_whose_objects_arrived(bucket) -> None:
    name, s3 = bucket
    sensor = build_file_drop_sensor(
        "partner", "{landing_url}", settle_seconds=3600, storage_options=S3_OPTIONS
    )
    defs = dg.Definitions(
        assets=_stream_assets("partner", ["shipments", "returns", "carriers"]), sensors=[sensor]
    )
    instance = dg.DagsterInstance.ephemeral()
    assert _tick(sensor, defs, instance, None).run_requests == [], "an empty bucket triggers nothing"

    s3.put_object(Bucket=name, Key=f"{S3_PREFIX}/shipments/a.csv", Body=b"id\n1\n")
    s3.put_object(Bucket=name, Key=f"{S3_PREFIX}/returns/a.jsonl", Body=b'{"id": 1}\n')
    s3.put_object(Bucket=name, Key=f"{S3_PREFIX}/carriers/archive/old.csv", Body=b"id\n1\n")  # too deep
    s3.put_object(Bucket=name, Key=f"{S3_PREFIX}/carriers/.part.csv", Body=b"id\n1\n")  # a dot-name
    s3.put_object(Bucket=name, Key=f"{S3_PREFIX}-old/carriers/a.csv", Body=b"id\n1\n")  # another prefix
    first = _tick(sensor, defs, instance, None)
    assert _requested(first) == [["raw/partner/returns", "raw/partner/shipments"]], (
        "objects count once visible (no settling on an object store); only <prefix>/<stream>/<object>"
    )
    for _ in range(2):
        again = _tick(sensor, defs, instance, first.cursor)
        assert again.run_requests == [] and again.cursor == first.cursor, "a repeated tick launches nothing"

    s3.put_object(Bucket=name, Key=f"{S3_PREFIX}/shipments/a.csv", Body=b"id\n1\n2\n")  # replaced, grown
    second = _tick(sensor, defs, instance, first.cursor)
    assert _requested(second) == [["raw/partner/shipments"]]
    s3.put_object(Bucket=name, Key=f"{S3_PREFIX}/carriers/b.csv", Body=b"id\n1\n")
    third = _tick(sensor, defs, instance, second.cursor)
    assert _requested(third) == [["raw/partner/carriers"]]
    assert len({r.run_key for r in first.run_requests + second.run_requests + third.run_requests}) == 3


def test_s3_sensor_does_not_see_an_object_whose_multipart_upload_is_in_progress(bucket) -> None:
    name, s3 = bucket
    sensor = build_file_drop_sensor("partner", "{landing_url}", storage_options=S3_OPTIONS)
    defs = dg.Definitions(assets=_stream_assets("partner", ["shipments"]), sensors=[sensor])
    instance = dg.DagsterInstance.ephemeral()
    key = f"{S3_PREFIX}/shipments/big.csv"
    upload = s3.create_multipart_upload(Bucket=name, Key=key)
    part = s3.upload_part(Bucket=name, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"id\n1\n")
    waiting = _tick(sensor, defs, instance, None)
    assert waiting.run_requests == [], "an upload in progress is not an object yet"
    s3.complete_multipart_upload(
        Bucket=name,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert _requested(_tick(sensor, defs, instance, waiting.cursor)) == [["raw/partner/shipments"]]


def test_the_declared_landing_sensor_watches_the_bucket_where_the_landing_url_says_so(bucket) -> None:
    """defs/automation/defs.yaml's landing sensor with PLATFORM_LANDING_URL=s3://…: its declared storage
    options (the local S3 sandbox's endpoint and credentials) reach the bucket."""
    name, s3 = bucket
    tree = dg.ComponentTree.for_project(environment.PROJECT_ROOT / "platform_assets")
    sensor = next(
        s for s in tree.build_defs(Path("automation")).sensors or [] if s.name == "landing_file_drop"
    )
    defs = dg.Definitions(assets=_stream_assets("landing", ["invoices", "campaigns"]), sensors=[sensor])
    s3.put_object(Bucket=name, Key=f"{S3_PREFIX}/campaigns/2026-03-01.csv", Body=b"campaign_id\ncmp_1\n")
    result = _tick(sensor, defs, dg.DagsterInstance.ephemeral(), None)
    assert _requested(result) == [["raw/landing/campaigns"]]
