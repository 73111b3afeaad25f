"""`python -m local_stack.sandbox.hightouch --port P --state-db PATH --warehouse PATH`

Serves the local Hightouch API on http://127.0.0.1:P/api/v1 until SIGINT/SIGTERM. Health check:
GET http://127.0.0.1:P/health answers {"status": "ok", "syncs": N}.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from local_stack.sandbox.hightouch import DEFAULT_SYNCS_DIR, WORKFLOW_SYNCS_DIR, start_sandbox
from platform_assets import environment
from platform_assets.integrations.hightouch.sync_spec import HightouchSyncConfigError


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    env = environment.current()
    parser = argparse.ArgumentParser(prog="python -m local_stack.sandbox.hightouch", description=__doc__)
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("HIGHTOUCH_SANDBOX_PORT", environment.DEFAULT_HIGHTOUCH_SANDBOX_PORT)),
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state-db", type=Path, default=env.sandbox_dir / "hightouch.sqlite3")
    parser.add_argument("--warehouse", type=Path, default=env.duckdb_path)
    parser.add_argument("--syncs-dir", type=Path, default=DEFAULT_SYNCS_DIR)
    parser.add_argument(
        "--also-syncs-dir",
        type=Path,
        action="append",
        help=f"more sync documents (repeatable; default: {WORKFLOW_SYNCS_DIR}, the workflows' syncs)",
    )
    parser.add_argument("--step-seconds", type=float, default=0.2, help="time each run stage takes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s hightouch-sandbox %(levelname)s %(message)s")
    args = _arguments(argv)
    try:
        sandbox = start_sandbox(
            state_db=args.state_db,
            warehouse=args.warehouse,
            port=args.port,
            host=args.host,
            syncs_dir=args.syncs_dir,
            also_syncs_dirs=args.also_syncs_dir if args.also_syncs_dir is not None else [WORKFLOW_SYNCS_DIR],
            step_seconds=args.step_seconds,
        )
    except (HightouchSyncConfigError, OSError) as error:
        print(f"Hightouch sandbox cannot start: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"Hightouch sandbox listening on {sandbox.api_base_url} (health: {sandbox.url}/health)", flush=True)
    stop.wait()
    sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
