"""Where the platform runs — local (default), ci or prod — resolved lazily in one place.

Nothing here is read at import time: `current()` reads the process environment the first time it is
called (and tests call `current.cache_clear()` after changing it), so modules can be imported freely.

- local: DuckDB file, Dagster's SQLite instance, the Salesforce and Hightouch sandboxes on loopback (and an
         S3-compatible server where PLATFORM_LANDING_URL puts the landing drops in a bucket).
- ci:    Snowflake with every schema prefixed by the branch, so pull requests never touch prod tables.
- prod:  Snowflake and the real Salesforce and Hightouch APIs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
MELTANO_PROJECT_DIR = PROJECT_ROOT / "meltano"

# Loopback ports of the local sandboxes (overridable, so tests can run their own).
DEFAULT_SALESFORCE_SANDBOX_PORT = 8791
DEFAULT_HIGHTOUCH_SANDBOX_PORT = 8792
DEFAULT_SALESFORCE_SANDBOX_PUBSUB_PORT = 8793
DEFAULT_S3_SANDBOX_PORT = 8794
SALESFORCE_PUBSUB_URL = "https://api.pubsub.salesforce.com:7443"
SANDBOX_SALESFORCE_CLIENT_ID = "platform-local-client"
SANDBOX_SALESFORCE_CLIENT_SECRET = "platform-local-secret"
SANDBOX_HIGHTOUCH_API_KEY = "platform-local-hightouch-key"
# The local S3-compatible server (moto) accepts any credentials; these make the local ones explicit.
SANDBOX_S3_ACCESS_KEY_ID = "platform-local-s3-key"
SANDBOX_S3_SECRET_ACCESS_KEY = "platform-local-s3-secret"


class Mode(StrEnum):
    LOCAL = "local"
    CI = "ci"
    PROD = "prod"


# Settings each non-local mode needs, by the part of the platform that needs them.
REQUIRED_SETTINGS: dict[str, tuple[str, ...]] = {
    "warehouse (Snowflake)": (
        "SNOWFLAKE_ACCOUNT",
        "SNOWFLAKE_USER",
        "SNOWFLAKE_PASSWORD",
        "SNOWFLAKE_ROLE",
        "SNOWFLAKE_WAREHOUSE",
        "SNOWFLAKE_DATABASE",
    ),
    "Salesforce": ("SALESFORCE_LOGIN_URL", "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"),
    "Hightouch": ("HIGHTOUCH_API_KEY",),
}


class MissingSettingsError(RuntimeError):
    """Raised when a ci/prod environment lacks settings; lists every missing variable at once."""


@dataclass(frozen=True)
class PlatformEnvironment:
    mode: Mode
    local_dir: Path
    """Where local state lives: warehouse file, landing folder, Dagster home, sandbox databases."""
    schema_prefix: str
    """Prefix for every warehouse schema ('' in local and prod, 'ci_<branch>_' in ci)."""

    @property
    def is_local(self) -> bool:
        return self.mode is Mode.LOCAL

    @property
    def duckdb_path(self) -> Path:
        return Path(os.environ.get("PLATFORM_DUCKDB_PATH", self.local_dir / "warehouse.duckdb"))

    @property
    def landing_dir(self) -> Path:
        return Path(os.environ.get("PLATFORM_LANDING_DIR", self.local_dir / "landing"))

    @property
    def landing_url(self) -> str:
        """Where file drops land: PLATFORM_LANDING_URL (e.g. s3://bucket/prefix), else the landing folder."""
        return os.environ.get("PLATFORM_LANDING_URL") or str(self.landing_dir)

    @property
    def s3_endpoint_url(self) -> str | None:
        """The S3 endpoint: locally the S3 sandbox on loopback; elsewhere AWS unless PLATFORM_S3_ENDPOINT_URL
        names an S3-compatible server."""
        if url := os.environ.get("PLATFORM_S3_ENDPOINT_URL"):
            return url
        if self.is_local:
            return f"http://127.0.0.1:{os.environ.get('S3_SANDBOX_PORT', DEFAULT_S3_SANDBOX_PORT)}"
        return None

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME", self.local_dir / "dagster_home"))

    @property
    def sandbox_dir(self) -> Path:
        return self.local_dir / "sandbox"

    @property
    def app_db_url(self) -> str | None:
        """PostgreSQL URL of the application database, where one is configured."""
        return os.environ.get("PLATFORM_APP_DB_URL") or None

    @property
    def salesforce_login_url(self) -> str:
        if self.is_local:
            port = os.environ.get("SALESFORCE_SANDBOX_PORT", DEFAULT_SALESFORCE_SANDBOX_PORT)
            return os.environ.get("SALESFORCE_LOGIN_URL", f"http://127.0.0.1:{port}")
        return os.environ["SALESFORCE_LOGIN_URL"]

    @property
    def salesforce_pubsub_url(self) -> str:
        """The Pub/Sub API (change events): https = TLS, http = plaintext (the local sandbox only)."""
        if self.is_local:
            port = os.environ.get("SALESFORCE_SANDBOX_PUBSUB_PORT", DEFAULT_SALESFORCE_SANDBOX_PUBSUB_PORT)
            return os.environ.get("SALESFORCE_PUBSUB_URL", f"http://127.0.0.1:{port}")
        return os.environ.get("SALESFORCE_PUBSUB_URL", SALESFORCE_PUBSUB_URL)

    @property
    def hightouch_api_base_url(self) -> str:
        if self.is_local:
            port = os.environ.get("HIGHTOUCH_SANDBOX_PORT", DEFAULT_HIGHTOUCH_SANDBOX_PORT)
            return os.environ.get("HIGHTOUCH_API_BASE_URL", f"http://127.0.0.1:{port}/api/v1")
        return os.environ.get("HIGHTOUCH_API_BASE_URL", "https://api.hightouch.com/api/v1")

    def schema(self, name: str) -> str:
        """The warehouse schema called `name` in this environment."""
        return f"{self.schema_prefix}{name}"

    def missing_settings(self) -> list[str]:
        if self.is_local:
            return []
        return [
            f"{var} ({part})"
            for part, variables in REQUIRED_SETTINGS.items()
            for var in variables
            if not os.environ.get(var)
        ]

    def validate(self) -> None:
        """Fail with every missing variable named, rather than one at a time at run time."""
        missing = self.missing_settings()
        if missing:
            raise MissingSettingsError(
                f"PLATFORM_ENV={self.mode} needs these environment variables, which are not set:\n  "
                + "\n  ".join(missing)
                + "\nSet them (see docs/production.md, 'Configuration for production')"
                + " or use PLATFORM_ENV=local."
            )


def _branch_schema_prefix() -> str:
    branch = os.environ.get("PLATFORM_BRANCH") or os.environ.get("GITHUB_HEAD_REF") or "main"
    slug = re.sub(r"[^a-z0-9]+", "_", branch.lower()).strip("_")[:40] or "main"
    return f"ci_{slug}_"


@cache
def current() -> PlatformEnvironment:
    raw_mode = os.environ.get("PLATFORM_ENV", Mode.LOCAL.value).strip().lower()
    try:
        mode = Mode(raw_mode)
    except ValueError:
        raise ValueError(
            f"PLATFORM_ENV={raw_mode!r} is not a platform environment; use one of "
            f"{', '.join(m.value for m in Mode)}."
        ) from None
    local_dir = Path(os.environ.get("PLATFORM_LOCAL_DIR", PROJECT_ROOT / ".local")).resolve()
    prefix = _branch_schema_prefix() if mode is Mode.CI else ""
    return PlatformEnvironment(mode=mode, local_dir=local_dir, schema_prefix=prefix)
