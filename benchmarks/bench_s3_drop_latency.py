"""End-to-end latency from an object dropped on the S3 landing prefix to the Salesforce sandbox updated.

The file-drop benchmark (bench_file_drop_latency.py: sandboxes, a gRPC code server and `dagster-daemon`,
one warm-up cycle, the platform idle before each drop) with the landing source on S3:
PLATFORM_LANDING_URL=s3://bench-landing/drops selects the local S3 sandbox (moto's server mode, seeded with
the sample company's drops), which the landing sensor lists and tap-landing reads. Each drop is one
PutObject of a new sign-up under drops/signups/; the clock stops when `salesforce/leads` has sent it.
Target: <= 120 s (ratio = measured / 120 s), as for the local folder.

    PLATFORM_LOCAL_DIR=/tmp/<you>/bench .venv/bin/python benchmarks/bench_s3_drop_latency.py [--drops 3]
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_file_drop_latency import free_port, measure, report

from local_stack.sandbox.s3 import client, split_url

LANDING_URL = "s3://bench-landing/drops"


def drop_on_s3(env: dict[str, str], name: str, text: str) -> str:
    """One PutObject under <prefix>/signups/: visible to the sensor only once complete."""
    bucket, prefix = split_url(LANDING_URL)
    endpoint = f"http://127.0.0.1:{env['S3_SANDBOX_PORT']}"
    client(endpoint).put_object(Bucket=bucket, Key=f"{prefix}/signups/{name}", Body=text.encode())
    return f"{LANDING_URL}/signups/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drops", type=int, default=3, help="object drops to time (median reported)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary local dir")
    args = parser.parse_args()
    local_dir = Path(tempfile.mkdtemp(prefix="bench_s3_drop_", dir=os.environ.get("PLATFORM_LOCAL_DIR")))
    extra = {"PLATFORM_LANDING_URL": LANDING_URL, "S3_SANDBOX_PORT": os.environ.get("S3_SANDBOX_PORT", "")}
    extra["S3_SANDBOX_PORT"] = extra["S3_SANDBOX_PORT"] or str(free_port())
    try:
        latencies = measure(args.drops, local_dir, extra, drop_on_s3)
    finally:
        if not args.keep:
            shutil.rmtree(local_dir, ignore_errors=True)
    report(
        __file__,
        "S3 object drop",
        "S3 object drop → Salesforce sandbox updated (local S3 server; daemon + code server, 30 s sensor "
        "intervals)",
        latencies,
    )


if __name__ == "__main__":
    main()
