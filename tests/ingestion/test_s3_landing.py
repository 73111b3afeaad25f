"""The landing source on an object store: tap-landing reads `s3://bucket/<nested prefix>/<stream>/…` from the
local S3-compatible server (moto, real S3 HTTP API on a free loopback port) through the real meltano CLI and
target-duckdb, with the settings the repository's sources.yaml declares for the landing source.

Streams the sample company does not have, under a nested prefix; an upload in progress is never read; a
hostile object fails its stream naming the object's URL and line; a re-run lands each line exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import yaml

from ingestion.hostile import SOURCE, hostile_project, materialize, raw_lines
from local_stack.sandbox.s3 import client
from platform_assets import environment

pytestmark = pytest.mark.integration

PREFIX = "teams/partners/drops"
STREAMS = {
    "shipments": {"format": "csv", "columns": {"shipment_id": "string", "weight_kg": "decimal"}},
    "returns": {"format": "jsonl", "columns": {"return_id": "string", "quantity": "integer"}},
}


@pytest.fixture
def bucket(local_platform, s3_sandbox: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on the S3 sandbox, selected as the landing URL (a nested prefix)."""
    name = f"landing-{uuid.uuid4().hex[:12]}"
    client(s3_sandbox).create_bucket(Bucket=name)
    monkeypatch.setenv("PLATFORM_LANDING_URL", f"s3://{name}/{PREFIX}")
    monkeypatch.setenv("PLATFORM_S3_ENDPOINT_URL", s3_sandbox)
    environment.current.cache_clear()
    yield name
    environment.current.cache_clear()


def declared_landing_settings() -> dict:
    """The landing source's settings in the repository's sources.yaml (root, endpoint, credentials,
    batch_dir)."""
    sources = yaml.safe_load(
        (environment.PROJECT_ROOT / "platform_assets/defs/ingestion/sources.yaml").read_text()
    )
    return sources["sources"]["landing"]["settings"]


def test_s3_landing_reads_new_objects_once_skips_uploads_in_progress_and_names_bad_lines(
    meltano_plugins, s3_sandbox, bucket, tmp_path
):
    s3 = client(s3_sandbox)
    key = f"{PREFIX}/{{}}".format
    s3.put_object(
        Bucket=bucket, Key=key("shipments/2026-03-01.csv"), Body=b"shipment_id,weight_kg\ns1,1.5\ns2,2\n"
    )
    bad = b'{"return_id": "r1", "quantity": 1}\n{"return_id": "r2", "quantity": 2}\n{"return_id": "r3",\n'
    s3.put_object(Bucket=bucket, Key=key("returns/a.jsonl"), Body=bad)
    s3.put_object(Bucket=bucket, Key=key("shipments/archive/old.csv"), Body=b"not,a\nstream,file\n")
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}-old/shipments/x.csv", Body=b"not under the prefix\n")
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key("shipments/2026-03-02.csv"))
    part = s3.upload_part(
        Bucket=bucket,
        Key=key("shipments/2026-03-02.csv"),
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"shipment_id,weight_kg\ns3,3\ns4,4\n",
    )
    # As the repository's landing source runs locally: its settings, bulk mode into target-duckdb-bulk.
    project_dir, sources_file = hostile_project(
        tmp_path / "project", STREAMS, bulk={}, settings=declared_landing_settings()
    )

    first = materialize(project_dir, sources_file)
    assert not first.success
    message = "\n".join(e.step_failure_data.error.message for e in first.get_step_failure_events())
    url = f"s3://{bucket}/{PREFIX}/returns/a.jsonl"
    assert f"raw/{SOURCE}/returns: {url} line 3: not valid JSON" in message, message
    assert raw_lines("returns") == [("returns/a.jsonl", 1), ("returns/a.jsonl", 2)], "the lines before it"
    assert raw_lines("shipments") == [("shipments/2026-03-01.csv", 2), ("shipments/2026-03-01.csv", 3)], (
        "the upload in progress is not read; deeper objects and a sibling prefix are not the stream's"
    )

    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key("shipments/2026-03-02.csv"),
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    fixed = bad.replace(b'"r3",\n', b'"r3", "quantity": 3}\n') + b'{"return_id": "r4", "quantity": 4}\n'
    s3.put_object(Bucket=bucket, Key=key("returns/a.jsonl"), Body=fixed)  # an object grows by replacement
    second = materialize(project_dir, sources_file)
    assert second.success
    assert raw_lines("returns") == [("returns/a.jsonl", n) for n in (1, 2, 3, 4)], "each line exactly once"
    assert raw_lines("shipments") == [
        ("shipments/2026-03-01.csv", 2),
        ("shipments/2026-03-01.csv", 3),
        ("shipments/2026-03-02.csv", 2),
        ("shipments/2026-03-02.csv", 3),
    ]

    third = materialize(project_dir, sources_file)
    assert third.success
    extracted = {
        e.asset_key.path[-1]: e.materialization.metadata["rows_extracted"].value
        for e in third.get_asset_materialization_events()
    }
    assert extracted == {"shipments": 0, "returns": 0}, "an unchanged prefix extracts nothing"
    assert len(raw_lines("returns")) == 4 and len(raw_lines("shipments")) == 4
