"""Workflows and per-customer reports declared in YAML (docs/workflows.md)."""
