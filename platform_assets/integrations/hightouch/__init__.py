"""Hightouch: the REST client, its Dagster resource, and the sync declarations (one YAML per sync)."""
