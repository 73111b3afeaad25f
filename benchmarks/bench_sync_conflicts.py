"""Conflict policies benchmark: what detecting and deciding conflicts adds to a Salesforce sync run.

    python benchmarks/bench_sync_conflicts.py [--rows 10000] [--changed-share 0.1] [--rounds 5]

Two identical set-ups (a sandbox org and a DuckDB warehouse each) sync the same Leads. Each round edits the
same `changed-share` of model rows in both, has "a rep" edit half of those Leads in Salesforce (a Bulk
update), extracts Lead into raw_salesforce.lead, and runs the sync: with conflict policies (a custom rule
on FirstName, salesforce_wins on the rest) in one set-up, without policies (the baseline) in the other,
alternating which goes first. Target: the run with policies takes at most 1.5x the run without.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = ["Signup_Id__c", "FirstName", "LastName", "Company", "Email", "Product_Usage_Score__c"]
TARGET = 1.5


class SetUp:
    """One org and one warehouse, synced once."""

    def __init__(self, workdir: Path, rows: int, with_policies: bool) -> None:
        from local_stack.sandbox.salesforce import start_sandbox
        from platform_assets.integrations.salesforce.client import SalesforceClient, SalesforceCredentials
        from platform_assets.integrations.salesforce.sync_spec import SyncSpec
        from platform_assets.warehouse import DuckDBWarehouse

        self.sandbox = start_sandbox(db_path=workdir / "org.sqlite")
        self.org = self.sandbox.__enter__()
        credentials = SalesforceCredentials(self.org.url, self.org.client_id, self.org.client_secret)
        self.client = lambda: SalesforceClient(credentials, poll_interval=0.05, timeout=300)
        self.path = workdir / "warehouse.duckdb"
        self.resource = DuckDBWarehouse(path=str(self.path))
        self.sql("CREATE SCHEMA activation")
        self.sql(
            "CREATE TABLE activation.act_bench_leads AS SELECT "
            "'sgn_' || lpad(i::VARCHAR, 7, '0') AS signup_id, "
            "'sgn_' || lpad(i::VARCHAR, 7, '0') AS Signup_Id__c, 'First ' || i AS FirstName, "
            "'Last ' || i AS LastName, 'Company ' || (i % 7) AS Company, "
            "'user' || i || '@example.com' AS Email, "
            f"(i * 1.5)::DOUBLE AS Product_Usage_Score__c FROM range({rows}) t(i)"
        )
        policies = dict(
            conflict_policy="salesforce_wins",
            field_conflict_policies={
                "FirstName": {
                    "policy": "custom",
                    "expression": "salesforce_value || ' / ' || warehouse_value",
                }
            },
            salesforce_data="raw_salesforce.lead",
        )
        self.spec = SyncSpec(
            name="bench_leads", model="act_bench_leads", object="Lead", mode="upsert",
            external_id_field="Signup_Id__c", primary_key="signup_id", mapping={f: f for f in FIELDS},
            batch_size=10_000, **(policies if with_policies else {}),
        )  # fmt: skip
        self.runs = 0
        self.sync()

    def sync(self):
        from platform_assets.integrations.salesforce.sync_engine import SalesforceSyncRun

        self.runs += 1
        return SalesforceSyncRun(
            spec=self.spec,
            warehouse=self.resource,
            client=self.client(),
            sync_schema="platform_sync",
            model_schema="activation",
            run_id=f"bench-{self.runs}",
        ).run()

    def round(self, round_no: int, every: int) -> tuple[float, int, int]:
        """Edit rows on both sides, extract, then time the sync: (seconds, records sent, conflicts)."""
        touched = f"hash(signup_id) % {every} = 0"
        self.sql(
            f"UPDATE activation.act_bench_leads SET FirstName = 'Model {round_no} ' || signup_id, "
            f"Product_Usage_Score__c = Product_Usage_Score__c + 1 WHERE {touched}"
        )
        # A rep edits half of those Leads' FirstName in Salesforce.
        rows = self.sql(
            "SELECT salesforce_id FROM platform_sync.sync_state WHERE record_key IN "
            f"(SELECT signup_id FROM activation.act_bench_leads WHERE {touched}) "
            "AND hash(record_key || '#rep') % 2 = 0"
        )
        edited = [{"Id": sf_id, "FirstName": f"Rep {round_no}"} for (sf_id,) in rows]
        self.client().ingest("Lead", "update", edited, max_records_per_job=10_000)
        self.extract()
        started = time.perf_counter()
        report = self.sync()
        seconds = time.perf_counter() - started
        return seconds, sum(report.succeeded.values()), sum(report.conflicts.values())

    def extract(self) -> None:
        columns = ["Id", "SystemModstamp", "IsDeleted", *FIELDS]
        rows = list(self.client().query(f"SELECT {', '.join(columns)} FROM Lead", max_records=10**7))
        import pyarrow

        table = pyarrow.table({c: [row.get(c) or None for row in rows] for c in columns})
        with self.resource.session() as session:
            session.execute("CREATE SCHEMA IF NOT EXISTS raw_salesforce")
            session.raw.register("extracted", table)
            session.raw.execute("CREATE OR REPLACE TABLE raw_salesforce.lead AS SELECT * FROM extracted")

    def sql(self, statement: str) -> list[tuple]:
        with self.resource.session() as session:
            result = session.raw.execute(statement)
            return result.fetchall() if result.description else []

    def close(self) -> None:
        self.sandbox.__exit__(None, None, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--changed-share", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    every = max(1, round(1 / args.changed_share))
    with tempfile.TemporaryDirectory(prefix="bench_conflicts_") as scratch:
        (Path(scratch) / "policies").mkdir()
        (Path(scratch) / "plain").mkdir()
        policies = SetUp(Path(scratch) / "policies", args.rows, with_policies=True)
        plain = SetUp(Path(scratch) / "plain", args.rows, with_policies=False)
        times: dict[str, list[float]] = {"policies": [], "plain": []}
        found: list[int] = []
        try:
            for round_no in range(1, args.rounds + 1):
                order = [("policies", policies), ("plain", plain)]
                for name, setup in order if round_no % 2 else reversed(order):
                    seconds, sent, conflicts = setup.round(round_no, every)
                    times[name].append(seconds)
                    found += [conflicts] if name == "policies" else []
                    print(
                        f"round {round_no} {name:8s}: {seconds:.2f} s, {sent} records, {conflicts} conflicts"
                    )
        finally:
            policies.close()
            plain.close()
    with_policies, without = statistics.median(times["policies"]), statistics.median(times["plain"])
    ratio = with_policies / without
    conflicts = round(statistics.median(found))
    print(
        f"\nsync of {sent} changed records, {conflicts} conflicts: {with_policies:.2f} s with conflict "
        f"policies vs {without:.2f} s without (median of {args.rounds}): {ratio:.2f}x (target <= {TARGET}x)"
    )
    from figures import emit

    emit(
        "bench_sync_conflicts",
        f"Sync of {sent:,} changed records with {conflicts:,} conflicts, {args.rows:,} Leads "
        f"(median of {args.rounds})",
        f"{with_policies:.2f} s with conflict policies",
        f"the same sync without policies {without:.2f} s",
        ratio,
        f"≤ {TARGET}x",
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
