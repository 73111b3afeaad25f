"""The local S3-compatible server: moto's server mode (real S3 HTTP API on loopback), holding the landing
drops where PLATFORM_LANDING_URL is an s3:// URL.

moto keeps objects in memory, so the sandbox is seeded at start from the local landing folder the sample
company writes (`seed`: every file the bucket does not hold yet), like the Salesforce sandbox seeds its org.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from moto.server import ThreadedMotoServer

from platform_assets import environment

READY_KEY = ".sandbox-ready"  # written at the bucket's root once seeded: the health check reads it
REGION = "us-east-1"


def client(endpoint_url: str):  # -> S3Client (boto3's types are generated at run time)
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=environment.SANDBOX_S3_ACCESS_KEY_ID,
        aws_secret_access_key=environment.SANDBOX_S3_SECRET_ACCESS_KEY,
    )


def split_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"{url!r} is not an s3://bucket[/prefix] URL")
    return parts.netloc, parts.path.strip("/")


@contextmanager
def running(port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """A moto S3 server on loopback for the block (port 0: a free one); yields its endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    try:
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.stop()


def seed(endpoint_url: str, landing_url: str, landing_dir: Path | None) -> int:
    """Create the bucket of `landing_url` and upload each `<landing_dir>/<stream>/<file>` it lacks (dot-files
    are drops still being written); returns how many files were uploaded."""
    bucket, prefix = split_url(landing_url)
    s3 = client(endpoint_url)
    s3.create_bucket(Bucket=bucket)
    uploaded = 0
    if landing_dir is not None and landing_dir.is_dir():
        present = {
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        }
        for path in sorted(landing_dir.glob("*/*")):
            key = "/".join(part for part in (prefix, path.parent.name, path.name) if part)
            if path.is_file() and not path.name.startswith(".") and key not in present:
                s3.upload_file(str(path), bucket, key)
                uploaded += 1
    s3.put_object(Bucket=bucket, Key=READY_KEY, Body=b"", ACL="public-read")  # read by an unsigned GET
    return uploaded
