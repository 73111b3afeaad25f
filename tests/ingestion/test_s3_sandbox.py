"""The local S3 sandbox (moto's server mode): seeded from the landing folder the sample company writes, and
ready for an unsigned health check once seeded (what tasks.py waits for)."""

from __future__ import annotations

import urllib.request
import uuid
from pathlib import Path

from local_stack.sandbox.s3 import READY_KEY, client, seed


def test_seed_uploads_each_landing_file_the_bucket_lacks_once(s3_sandbox: str, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "invoices").mkdir(parents=True)
    (landing / "invoices" / "part-00001.csv").write_text("invoice_id\ninv_1\n")
    (landing / "invoices" / ".part-00002.csv").write_text("invoice_id\n")  # still being written
    (landing / "signups").mkdir()
    (landing / "signups" / "part-00001.jsonl").write_text('{"signup_id": "s1"}\n')
    bucket = f"seed-{uuid.uuid4().hex[:12]}"
    url = f"s3://{bucket}/a/nested/prefix"

    assert seed(s3_sandbox, url, landing) == 2
    s3 = client(s3_sandbox)
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {
        "a/nested/prefix/invoices/part-00001.csv",
        "a/nested/prefix/signups/part-00001.jsonl",
        READY_KEY,
    }
    body = s3.get_object(Bucket=bucket, Key="a/nested/prefix/invoices/part-00001.csv")["Body"].read()
    assert body == b"invoice_id\ninv_1\n"
    with urllib.request.urlopen(f"{s3_sandbox}/{bucket}/{READY_KEY}", timeout=10) as ready:
        assert ready.status == 200, "tasks.py's health check reads the marker without credentials"

    s3.put_object(
        Bucket=bucket, Key="a/nested/prefix/invoices/part-00001.csv", Body=b"invoice_id\ninv_1\ninv_2\n"
    )
    assert seed(s3_sandbox, url, landing) == 0, "a restart uploads only what the bucket lacks"
    kept = s3.get_object(Bucket=bucket, Key="a/nested/prefix/invoices/part-00001.csv")["Body"].read()
    assert kept.endswith(b"inv_2\n"), "an object in the bucket is never replaced by the folder's file"
