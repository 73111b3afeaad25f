"""tap-salesforce-bulk: Salesforce objects through Bulk API 2.0 query jobs."""
