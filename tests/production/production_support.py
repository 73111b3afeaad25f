"""Helpers for the production tests: real processes on loopback, a throwaway PostgreSQL database.

A plain module (not conftest.py) so test modules can import it by its unique name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
BIN = REPO_ROOT / ".venv" / "bin"
PG_HOST = "127.0.0.1"
PG_PORT = 5432
# Trust auth on the CI/dev server; override for a server that needs a password.
PG_USER = os.environ.get("PLATFORM_TEST_PG_USER", "postgres")
PG_PASSWORD = os.environ.get("PLATFORM_TEST_PG_PASSWORD", "")
PG_MAINTENANCE_DB = os.environ.get("PLATFORM_TEST_PG_DB", "test")

# Distinctive values for every secret the platform reads; tests assert none of them leaks into what the
# UI shows. Non-secret settings get plain placeholders.
PLACEHOLDER_SECRETS = {
    "SNOWFLAKE_PASSWORD": "sfpw-9f3c1e-do-not-show",
    "SALESFORCE_CLIENT_SECRET": "sfsecret-7a2b4d-do-not-show",
    "HIGHTOUCH_API_KEY": "htkey-5e8d0a-do-not-show",
}
PLACEHOLDER_SETTINGS = {
    "SNOWFLAKE_ACCOUNT": "placeholder-account",
    "SNOWFLAKE_USER": "PLATFORM_PLACEHOLDER",
    "SNOWFLAKE_ROLE": "TRANSFORMER",
    "SNOWFLAKE_WAREHOUSE": "TRANSFORMING",
    "SNOWFLAKE_DATABASE": "ANALYTICS",
    "SALESFORCE_LOGIN_URL": "https://login.salesforce.invalid",
    "SALESFORCE_CLIENT_ID": "placeholder-client-id",
    **PLACEHOLDER_SECRETS,
}


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


requires_postgres = pytest.mark.skipif(
    not postgres_reachable(), reason=f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (CI has it)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], seconds: float, what: str, interval: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (OSError, requests.RequestException, ValueError) as error:
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"{what} did not happen within {seconds:.0f}s (last error: {last_error})")


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


class ProcessGroup:
    """Processes started in their own sessions, each stopped with its whole process group."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: Sequence[str | os.PathLike], env: Mapping[str, str], cwd: Path) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [str(a) for a in args],
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


@contextlib.contextmanager
def throwaway_postgres_database() -> Iterator[dict[str, str]]:
    """A fresh database on the local server, dropped afterwards; yields the DAGSTER_PG_* settings."""
    import psycopg2

    name = f"dagster_topology_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, password=PG_PASSWORD, dbname=PG_MAINTENANCE_DB
    )
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield {
            "DAGSTER_PG_HOST": PG_HOST,
            "DAGSTER_PG_PORT": str(PG_PORT),
            "DAGSTER_PG_USER": PG_USER,
            "DAGSTER_PG_PASSWORD": PG_PASSWORD,
            "DAGSTER_PG_DB": name,
        }
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def instance_home(directory: Path, environment: str) -> Path:
    """A DAGSTER_HOME holding deploy/<environment>/dagster.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEPLOY_DIR / environment / "dagster.yaml", directory / "dagster.yaml")
    return directory


def graphql(url: str, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    response = requests.post(url, json={"query": query, "variables": dict(variables or {})}, timeout=30)
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors from {url}: {body['errors']}")
    return body["data"]


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any platform or Dagster setting that could leak in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PLATFORM_", "DAGSTER_", "SNOWFLAKE_", "SALESFORCE_", "HIGHTOUCH_"))
    }
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1", **extra)
    return env


# What a production build holds (the Dockerfile copies the same), minus local state and build output.
BUILD_CONTENTS = ("platform_assets", "dbt_project", "meltano", "pyproject.toml", "workspace.yaml")
BUILD_IGNORED = shutil.ignore_patterns("target", "logs", ".meltano", "__pycache__", "dbt_packages", ".local")


def prepare_prod_build(destination: Path) -> Path:
    """A copy of the project with the dbt manifest prepared for Snowflake, as the image build does it.

    The repository's own dbt_project/target belongs to the local (DuckDB) environment and other tests,
    so prod-mode loading is proven on a copy instead of re-preparing that manifest in place.
    """
    destination.mkdir(parents=True, exist_ok=True)
    for name in BUILD_CONTENTS:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=BUILD_IGNORED)
        else:
            shutil.copyfile(source, destination / name)
    prepared = subprocess.run(
        [BIN / "python", "-m", "platform_assets.components.dbt_domains"],
        cwd=destination,
        capture_output=True,
        text=True,
        timeout=300,
        env=base_env(
            PLATFORM_ENV="prod", PLATFORM_LOCAL_DIR=str(destination / ".local"), **PLACEHOLDER_SETTINGS
        ),
    )
    if prepared.returncode != 0:
        raise RuntimeError(f"preparing the prod dbt manifest failed:\n{prepared.stderr[-4000:]}")
    return destination
