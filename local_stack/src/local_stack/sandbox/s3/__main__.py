"""`python -m local_stack.sandbox.s3 --port P --landing-url s3://bucket/prefix [--seed-from DIR]`

Serves an S3-compatible API (moto) on http://127.0.0.1:P until SIGINT/SIGTERM, with the bucket of the
landing URL seeded from the landing folder. Health check: GET http://127.0.0.1:P/<bucket>/.sandbox-ready
answers once the bucket is seeded.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from local_stack.sandbox.s3 import running, seed
from platform_assets import environment


def main(argv: list[str] | None = None) -> int:
    env = environment.current()
    parser = argparse.ArgumentParser(prog="python -m local_stack.sandbox.s3", description=__doc__)
    port = int(os.environ.get("S3_SANDBOX_PORT", environment.DEFAULT_S3_SANDBOX_PORT))
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--landing-url", default=env.landing_url, help="default: PLATFORM_LANDING_URL")
    parser.add_argument("--seed-from", type=Path, default=None, help="a landing folder to upload")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with running(args.port) as url:
        uploaded = seed(url, args.landing_url, args.seed_from)
        print(f"S3 sandbox on {url}: {args.landing_url} seeded with {uploaded} file(s)", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
