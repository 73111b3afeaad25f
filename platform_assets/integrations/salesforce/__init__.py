"""Salesforce: the protocol client (OAuth, Bulk API 2.0, query, describe), its Dagster resource, and the
declarative reverse-ETL sync (spec, change detection, engine, state)."""
