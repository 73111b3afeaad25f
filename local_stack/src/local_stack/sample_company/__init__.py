"""The sample company: a deterministic, seedable B2B SaaS business to feed the platform.

Same (scale, seed) → byte-identical output. Scale 1 is a small demo (300 workspaces, ~40k landing rows);
rows are streamed to disk, so scales of millions of rows run in constant memory.

- `generate(landing_dir, scale, seed)`: the landing folder (`<landing_dir>/<stream>/part-NNNNN.csv|jsonl`).
- `append_rows(landing_dir, stream, n, seed, file=None)`: n new rows as a new drop or onto an existing file.
- `write_app_db(url, scale, seed)`: PostgreSQL schema `app` (workspaces, users, subscriptions).
- `generate_salesforce_org(scale, seed)`: the Salesforce org's starting records (reference convention in
  `local_stack.sample_company.salesforce_org`).

Command line: `python -m local_stack.sample_company --help`.
"""

from local_stack.sample_company.app_db import write_app_db
from local_stack.sample_company.append import append_rows
from local_stack.sample_company.landing import STREAMS, generate
from local_stack.sample_company.salesforce_org import generate_salesforce_org

__all__ = ["STREAMS", "append_rows", "generate", "generate_salesforce_org", "write_app_db"]
