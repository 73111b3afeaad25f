"""Salesforce sync benchmark: change detection on a 1M-row activation model with 1% changed rows, and the
end-to-end sync of those changes against the sandbox versus simple-salesforce's bulk2 upsert.

    python benchmarks/bench_salesforce_sync.py [--rows 1000000] [--changed-share 0.01] [--rounds 7]

Targets: change detection >= 5M rows/s (DuckDB); end-to-end <= 1.0x simple-salesforce's time for the
same rows into the same sandbox, which runs as its own server process (as Salesforce does), in alternating
rounds that each edit the same rows again. Both clients poll every 0.5 s (their defaults differ:
simple-salesforce first sleeps 5 s); simple-salesforce sleeps before each job's first poll, the platform
polls as soon as all its jobs are uploaded, and the sandbox answers a poll that arrives while it applies
the job once the job is complete. API calls are counted by the sandbox for both.

The baseline only uploads rows it is handed; the platform's run also describes the object, finds the
changed rows, downloads the per-record results and advances the sync state.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAPPING = {
    "Signup_Id__c": "Signup_Id__c",
    "FirstName": "FirstName",
    "LastName": "LastName",
    "Company": "Company",
    "Email": "Email",
    "Title": "Title",
    "LeadSource": "LeadSource",
    "Workspace_Id__c": "Workspace_Id__c",
    "Product_Usage_Score__c": "Product_Usage_Score__c",
    "Active_Users__c": "Active_Users__c",
    "Last_Active_At__c": "Last_Active_At__c",
}


def build_model(db: Path, rows: int, changed_share: float, spec) -> int:
    """A 1M-row leads model, state as if all rows were synced, then `changed_share` of rows edited."""
    from platform_assets.integrations.salesforce.changes import ModelRelation, row_hash_sql
    from platform_assets.integrations.salesforce.sync_state import SyncStore
    from platform_assets.warehouse import DuckDBWarehouse, connect_duckdb

    connection = connect_duckdb(db)
    connection.execute("CREATE SCHEMA IF NOT EXISTS activation")
    connection.execute(
        "CREATE OR REPLACE TABLE activation.act_bench_leads AS SELECT "
        "'sgn_' || lpad(i::VARCHAR, 8, '0') AS signup_id, "
        "'sgn_' || lpad(i::VARCHAR, 8, '0') AS Signup_Id__c, "
        "'First' || i AS FirstName, 'Last' || i AS LastName, 'Company ' || (i % 5000) AS Company, "
        "'user' || i || '@example.com' AS Email, 'Engineer' AS Title, 'Web' AS LeadSource, "
        "'ws_' || lpad((i % 50000)::VARCHAR, 6, '0') AS Workspace_Id__c, "
        "round((i % 1000) / 10.0, 1)::DOUBLE AS Product_Usage_Score__c, "
        "(i % 40)::INTEGER AS Active_Users__c, "
        "TIMESTAMP '2026-03-01 00:00:00' + to_seconds(i) AS Last_Active_At__c FROM range(?) t(i)",
        [rows],
    )
    connection.close()
    store = SyncStore(DuckDBWarehouse(path=str(db)), "platform_sync")
    with store.session() as session:
        store.ensure_tables(session)
    model = ModelRelation("activation", "act_bench_leads", {c: c for c in [spec.primary_key, *MAPPING]})
    connection = connect_duckdb(db)
    connection.execute(
        f"INSERT INTO platform_sync.sync_state SELECT ?, signup_id, {row_hash_sql(spec, model, 'm')}, "
        "NULL, now()::TIMESTAMP FROM activation.act_bench_leads m",
        [spec.name],
    )
    every = round(1 / changed_share)
    changed = connection.execute(
        "SELECT count(*) FROM activation.act_bench_leads WHERE hash(signup_id) % ? = 0", [every]
    ).fetchone()[0]
    connection.close()
    edit_rows(db, every)
    return int(changed)


def bench_detection(db: Path, spec, repeat: int, rows: int) -> tuple[float, float, int]:
    from platform_assets.integrations.salesforce.changes import detect_changes, resolve_model
    from platform_assets.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(path=str(db))
    timings, cpu, found = [], [], 0
    with warehouse.session() as session:
        model = resolve_model(session, spec, "activation")
        for _ in range(repeat):
            started, started_cpu = time.perf_counter(), time.process_time()
            changes = detect_changes(session, spec, model, '"platform_sync"."sync_state"', False)
            timings.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            found = len(changes.changes)
    return statistics.median(timings), statistics.median(cpu), found


def changed_records(db: Path, every: int) -> list[dict[str, str]]:
    """The changed rows as simple-salesforce records (strings, the same wire format)."""
    from platform_assets.integrations.salesforce.sync_engine import wire_value
    from platform_assets.warehouse import connect_duckdb

    connection = connect_duckdb(db, read_only=True)
    columns = list(MAPPING)
    rows = connection.execute(
        f"SELECT {', '.join(columns)} FROM activation.act_bench_leads WHERE hash(signup_id) % ? = 0", [every]
    ).fetchall()
    connection.close()
    return [{MAPPING[c]: wire_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def edit_rows(db: Path, every: int) -> None:
    from platform_assets.warehouse import connect_duckdb

    connection = connect_duckdb(db)
    connection.execute(
        "UPDATE activation.act_bench_leads SET Product_Usage_Score__c = Product_Usage_Score__c + 0.5 "
        "WHERE hash(signup_id) % ? = 0",
        [every],
    )
    connection.close()


@dataclass
class SandboxProcess:
    url: str
    ca_cert: Path

    def total_calls(self) -> int:
        """API calls the sandbox served (its admin endpoint is not counted)."""
        response = requests.get(f"{self.url}/__sandbox/counters", verify=str(self.ca_cert), timeout=30)
        return sum(response.json()["endpoints"].values())


@contextmanager
def sandbox_process(workdir: Path) -> Iterator[SandboxProcess]:
    """The sandbox as its own server process, as the platform runs it: Salesforce processes jobs on its
    own machines, so a client that keeps working while a job runs must not share the server's GIL."""
    from local_stack.browser.dagster_ui import free_port, port_open

    port = free_port()
    db = workdir / "org.sqlite"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local_stack.sandbox.salesforce",
            "--port",
            str(port),
            "--pubsub-port",
            "0",
            "--db",
            str(db),
            "--tls",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sandbox = SandboxProcess(f"https://127.0.0.1:{port}", workdir / "org-tls" / "sandbox-cert.pem")
    try:
        deadline = time.monotonic() + 60
        while not (sandbox.ca_cert.exists() and port_open(port)):
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the Salesforce sandbox process did not start")
            time.sleep(0.2)
        yield sandbox
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed-share", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=9, help="change-detection repetitions")
    parser.add_argument("--rounds", type=int, default=7, help="end-to-end rounds (each edits the rows again)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-salesforce-sync-"))
    os.environ["PLATFORM_LOCAL_DIR"] = str(workdir)
    from figures import emit
    from simple_salesforce import Salesforce

    from platform_assets.environment import SANDBOX_SALESFORCE_CLIENT_ID, SANDBOX_SALESFORCE_CLIENT_SECRET
    from platform_assets.integrations.salesforce.client import SalesforceClient, SalesforceCredentials
    from platform_assets.integrations.salesforce.sync_engine import SalesforceSyncRun
    from platform_assets.integrations.salesforce.sync_spec import SyncSpec
    from platform_assets.warehouse import DuckDBWarehouse

    spec = SyncSpec(
        name="bench_leads",
        model="act_bench_leads",
        object="Lead",
        mode="upsert",
        external_id_field="Signup_Id__c",
        primary_key="signup_id",
        mapping=MAPPING,
        batch_size=10_000,
    )
    db = workdir / "warehouse.duckdb"
    print(f"Building a {args.rows:,}-row model with {args.changed_share:.0%} changed rows in {db} ...")
    changed = build_model(db, args.rows, args.changed_share, spec)

    seconds, cpu_seconds, found = bench_detection(db, spec, args.repeat, args.rows)
    throughput = args.rows / seconds
    print("\n== Change detection (DuckDB, hash in SQL + anti-join against sync_state)")
    print(f"rows scanned        {args.rows:>12,}")
    print(f"changed rows found  {found:>12,}  (expected {changed:,})")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    idle = args.rows / (cpu_seconds / cores)
    context = f"{args.repeat} runs; load average {load:.1f}, {cores} cores"
    print(f"median wall time    {seconds:>12.3f} s  ({context})")
    print(f"median CPU time     {cpu_seconds:>12.3f} s  (all DuckDB threads)")
    ratio = throughput / 5e6
    print(f"throughput          {throughput / 1e6:>12.2f} M rows/s wall (target >= 5.00: {ratio:.2f}x)")
    print(
        f"                    {idle / 1e6:>12.2f} M rows/s with {cores} idle cores (rows / (CPU s / cores))"
    )

    every = round(1 / args.changed_share)
    with sandbox_process(workdir) as sandbox:
        os.environ["REQUESTS_CA_BUNDLE"] = str(sandbox.ca_cert)  # our client's requests session trusts it
        http = requests.Session()
        http.verify = str(sandbox.ca_cert)
        token = http.post(
            f"{sandbox.url}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": SANDBOX_SALESFORCE_CLIENT_ID,
                "client_secret": SANDBOX_SALESFORCE_CLIENT_SECRET,
            },
            timeout=30,
        ).json()
        sf = Salesforce(
            instance_url=token["instance_url"], session_id=token["access_token"], session=http, version="62.0"
        )
        # Warm-up (untimed): create the records, so every timed run updates existing Leads.
        sf.bulk2.Lead.upsert(records=changed_records(db, every), external_id_field="Signup_Id__c", wait=0.5)
        client = SalesforceClient(
            SalesforceCredentials(
                sandbox.url, SANDBOX_SALESFORCE_CLIENT_ID, SANDBOX_SALESFORCE_CLIENT_SECRET
            ),
            poll_interval=0.5,
        )
        baseline_runs, platform_runs, detection_runs = [], [], []
        for round_no in range(args.rounds):
            if round_no:  # the same rows change again, so both have the same 1% to send
                edit_rows(db, every)
            records = changed_records(db, every)
            calls_before = sandbox.total_calls()
            started = time.perf_counter()
            sf.bulk2.Lead.upsert(
                records=records, external_id_field="Signup_Id__c", batch_size=spec.batch_size, wait=0.5
            )
            baseline_runs.append((time.perf_counter() - started, sandbox.total_calls() - calls_before))

            calls_before = sandbox.total_calls()
            started = time.perf_counter()
            report = SalesforceSyncRun(
                spec,
                DuckDBWarehouse(path=str(db)),
                client,
                "platform_sync",
                "activation",
                run_id=f"bench{round_no}",
            ).run()
            platform_runs.append((time.perf_counter() - started, sandbox.total_calls() - calls_before))
            detection_runs.append(report.detection_seconds)
    baseline_seconds = statistics.median(seconds for seconds, _ in baseline_runs)
    platform_seconds = statistics.median(seconds for seconds, _ in platform_runs)
    baseline_calls, platform_calls = baseline_runs[-1][1], platform_runs[-1][1]

    print(
        f"\n== End-to-end sync of the {len(records):,} changed rows into the sandbox (Bulk API 2.0, TLS, the "
        f"sandbox in its own process), median of {args.rounds} alternating rounds"
    )
    print(
        f"platform sync       {platform_seconds:>8.2f} s   {platform_calls:>4} API calls  "
        f"(sent {sum(report.sent.values()):,}, succeeded {sum(report.succeeded.values()):,}, "
        f"jobs {len(report.job_ids)}, client-counted calls {report.api_calls})"
    )
    print(
        f"simple-salesforce   {baseline_seconds:>8.2f} s   {baseline_calls:>4} API calls  (bulk2 upsert only)"
    )
    print(
        f"rounds              platform {', '.join(f'{t:.2f}' for t, _ in platform_runs)} s; "
        f"simple-salesforce {', '.join(f'{t:.2f}' for t, _ in baseline_runs)} s"
    )
    print(f"ratio               {platform_seconds / baseline_seconds:>8.2f}x  (target <= 1.00x)")
    after = statistics.median(t - d for (t, _), d in zip(platform_runs, detection_runs, strict=True))
    print(
        f"after detection     {after:>8.2f} s = {after / baseline_seconds:.2f}x  "
        "(the platform run minus its change detection: both start from the changed rows)"
    )
    print(f"API calls ratio     {platform_calls / max(baseline_calls, 1):>8.2f}x")
    emit(
        __file__,
        f"Change detection, {args.rows:,}-row model, {args.changed_share:.0%} changed (wall, median of "
        f"{args.repeat})",
        platform=f"{throughput / 1e6:.2f}M rows/s ({idle / 1e6:.2f}M rows/s CPU time on {cores} idle cores)",
        baseline="target 5M rows/s",
        ratio=ratio,
        target="≥ 5M rows/s",
    )
    emit(
        __file__,
        f"End-to-end sync of {len(records):,} changes vs simple-salesforce bulk2 upsert "
        f"(median of {args.rounds} rounds)",
        platform=f"{platform_seconds:.2f} s, {platform_calls} API calls",
        baseline=f"{baseline_seconds:.2f} s, {baseline_calls} API calls",
        ratio=platform_seconds / baseline_seconds,
        target="≤ 1.0x",
    )
    emit(
        __file__,
        "The same sync minus the platform's change detection (both start from the changed rows)",
        platform=f"{after:.2f} s",
        baseline=f"{baseline_seconds:.2f} s",
        ratio=after / baseline_seconds,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
