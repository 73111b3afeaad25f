"""Data-aware scheduling: the automation policy, sensors, alerts and jobs (see docs/automation.md)."""

from platform_assets.automation.policy import apply_platform_policy

__all__ = ["apply_platform_policy"]
