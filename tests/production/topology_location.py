"""A test-only code location for the topology test: one asset that needs no external system.

Served by its own `dagster api grpc -f tests/production/topology_location.py` next to the real
platform_assets code server, so a run can succeed end to end without Snowflake or Salesforce.
"""

from __future__ import annotations

import os

import dagster as dg


@dg.asset(group_name="topology_probe", pool="warehouse")
def topology_probe() -> dg.MaterializeResult:
    """Proves a run launched through the webserver executes and is recorded in PostgreSQL."""
    return dg.MaterializeResult(metadata={"worker_pid": os.getpid()})


defs = dg.Definitions(assets=[topology_probe])
