"""dbt: the CLI resource that runs dbt with the platform environment."""
