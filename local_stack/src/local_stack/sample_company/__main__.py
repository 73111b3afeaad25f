"""`python -m local_stack.sample_company [--scale S] [--seed N] [--landing-dir D] [--overwrite]
[--app-db-url URL] [--salesforce-seed PATH]`: write the sample company's missing landing files (and app
database, Salesforce seed). Existing landing files are never replaced unless --overwrite is given."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from local_stack.sample_company import generate_salesforce_org, write_app_db
from local_stack.sample_company.landing import LandingGenerator
from platform_assets import environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.sample_company", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="1 = ~300 workspaces, ~40k landing rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--landing-dir",
        type=Path,
        default=None,
        help="default: the environment's landing folder (PLATFORM_LOCAL_DIR/landing)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing landing files that differ from the generated ones (default: keep them; "
        "they may hold your edits)",
    )
    parser.add_argument(
        "--app-db-url",
        default=None,
        help="PostgreSQL URL to write schema `app` to (default: PLATFORM_APP_DB_URL, if set)",
    )
    parser.add_argument(
        "--salesforce-seed",
        type=Path,
        default=None,
        help="write the Salesforce org's starting records to this JSON file",
    )
    args = parser.parse_args(argv)

    env = environment.current()
    landing_dir = args.landing_dir or env.landing_dir
    started, cpu_started = time.perf_counter(), time.process_time()
    generator = LandingGenerator(landing_dir, args.scale, args.seed, overwrite=args.overwrite)
    counts = generator.run()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    total = sum(counts.values())
    print(
        f"landing: {total:,} rows in {elapsed:.1f}s, {cpu:.1f}s CPU ({total / max(cpu, 1e-9):,.0f} rows per "
        f"CPU second) -> {landing_dir}"
    )
    for stream, rows in counts.items():
        print(f"  {stream:<14} {rows:>12,}")
    if generator.kept:
        print(
            f"kept {len(generator.kept)} existing landing file(s) that differ from the generated ones "
            "(edited, or another scale or seed); --overwrite replaces them:"
        )
        for path in generator.kept:
            print(f"  {path}")
    app_db_url = args.app_db_url or env.app_db_url
    if app_db_url:
        tables = write_app_db(app_db_url, args.scale, args.seed)
        print("app database (schema app): " + ", ".join(f"{t} {n:,}" for t, n in tables.items()))
    if args.salesforce_seed:
        org = generate_salesforce_org(args.scale, args.seed)
        args.salesforce_seed.parent.mkdir(parents=True, exist_ok=True)
        args.salesforce_seed.write_text(json.dumps(org, indent=1, sort_keys=True) + "\n")
        print(
            "salesforce seed: "
            + ", ".join(f"{o} {len(r):,}" for o, r in org.items())
            + f" -> {args.salesforce_seed}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
