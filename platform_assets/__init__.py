"""An asset-based data platform: Meltano ingestion, dbt domains and reverse-ETL syncs on Dagster."""
