"""python -m local_stack.sandbox.salesforce --port P [--pubsub-port Q] --db PATH
[--seed-json FILE | --seed-scale N]"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from local_stack.sandbox.salesforce import sample_company_org, start_sandbox
from local_stack.sandbox.salesforce.errors import ApiError
from local_stack.sandbox.salesforce.schema import OBJECTS
from platform_assets import environment


def main(argv: list[str] | None = None) -> int:
    env = environment.current()
    parser = argparse.ArgumentParser(prog="python -m local_stack.sandbox.salesforce", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SALESFORCE_SANDBOX_PORT", environment.DEFAULT_SALESFORCE_SANDBOX_PORT)),
    )
    parser.add_argument(
        "--pubsub-port",
        type=int,
        default=int(
            os.environ.get(
                "SALESFORCE_SANDBOX_PUBSUB_PORT", environment.DEFAULT_SALESFORCE_SANDBOX_PUBSUB_PORT
            )
        ),
        help="port of the Pub/Sub API (gRPC, change events)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=env.sandbox_dir / "salesforce.sqlite",
        help="SQLite file holding the org's records (kept across restarts)",
    )
    parser.add_argument("--seed-json", type=Path, help="JSON {sObject: [records]} to load into an empty org")
    parser.add_argument(
        "--seed-scale", type=int, help="seed an empty org from the sample company at this scale"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed for --seed-scale")
    parser.add_argument("--tls", action="store_true", help="serve https with a self-signed certificate")
    parser.add_argument(
        "--jwt-public-key",
        action="append",
        default=[],
        metavar="CLIENT_ID=PEM_FILE",
        help="trust JWT-bearer assertions of CLIENT_ID signed by this public key",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    keys = {}
    for item in args.jwt_public_key:
        client_id, _, path = item.partition("=")
        if not path:
            parser.error(f"--jwt-public-key needs CLIENT_ID=PEM_FILE, got {item!r}")
        keys[client_id] = Path(path).read_text()
    try:
        handle = start_sandbox(
            args.port,
            args.db,
            host=args.host,
            jwt_public_keys=keys,
            tls=args.tls,
            pubsub_port=args.pubsub_port,
        )
    except OSError as exc:
        print(f"Cannot start the sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        if args.seed_json or args.seed_scale:
            if any(handle.count(name, include_deleted=True) for name in OBJECTS):
                print(f"{args.db} already holds records; not seeding again.", flush=True)
            else:
                data = (
                    json.loads(args.seed_json.read_text())
                    if args.seed_json
                    else sample_company_org(args.seed_scale, args.seed)
                )
                print(f"Seeded: {json.dumps(handle.seed(data))}", flush=True)
    except (ApiError, ValueError, OSError) as exc:
        handle.stop()
        print(f"Cannot seed the sandbox: {exc}", file=sys.stderr)
        return 2
    print(
        f"Salesforce sandbox listening on {handle.url}, Pub/Sub API on {handle.pubsub_url} (db {args.db})",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
