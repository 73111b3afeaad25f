"""A throwaway platform for the browser: temp instance, sample data, sandboxes and `dagster dev` on loopback.

Everything lives under one scratch directory (PLATFORM_LOCAL_DIR, DAGSTER_HOME) and on free loopback
ports, so the browser tests never touch a developer's `.local` data or anyone else's servers. Every
process starts in its own process group and is stopped with its children, whatever happens in between.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platform_assets.environment import PROJECT_ROOT

DEFINITIONS_MODULE = "platform_assets.definitions"
LOCATION_NAME = "platform_assets"  # workspace.yaml
INSTANCE_CONFIG = PROJECT_ROOT / "deploy" / "local" / "dagster.yaml"
VENV_BIN = Path(sys.executable).parent
SAMPLE_SEED = "42"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class HarnessError(RuntimeError):
    """A process of the harness failed; the message names it and ends with the tail of its log."""


@dataclass(frozen=True)
class RunningUI:
    url: str
    """Base URL of the Dagster webserver, e.g. http://127.0.0.1:41234"""
    env: Mapping[str, str]
    """The environment every platform process of this harness runs with."""
    local_dir: Path
    log_dir: Path
    paused: tuple[str, ...]
    """Sensors and schedules the harness stopped at start (they start RUNNING in local mode)."""
    location: str = LOCATION_NAME


# ------------------------------------------------------------------------------------------- plumbing
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_process_group(process: subprocess.Popen, grace_seconds: float = 15) -> None:
    """SIGTERM the leader (it shuts its own children down), then SIGKILL whatever is left of its group."""
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_seconds)
    # Stragglers (run workers, resource trackers) stay in the group even when the leader exits cleanly.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _terminate_with_parent() -> None:
    """Linux: SIGTERM the child when the process that started it dies, even by SIGKILL (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def process_group(
    name: str, command: Sequence[str | os.PathLike], env: Mapping[str, str], log_dir: Path
) -> Iterator[tuple[subprocess.Popen, Path]]:
    """Run `command` in its own session with output in `<log_dir>/<name>.log`; stop the group on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_terminate_with_parent,
        )
    try:
        yield process, log_path
    finally:
        stop_process_group(process)


def wait_for_http(url: str, process: subprocess.Popen, log_path: Path, seconds: float) -> None:
    """Wait until `url` answers 2xx; fail at once, with the log, if the process serving it exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HarnessError(
                f"{log_path.stem} exited ({process.returncode}) before {url} answered:\n{log_tail(log_path)}"
            )
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
            return
        time.sleep(0.3)
    raise HarnessError(f"{url} did not answer within {seconds:.0f}s:\n{log_tail(log_path)}")


def run_step(
    name: str, command: Sequence[str | os.PathLike], env: Mapping[str, str], log_dir: Path, timeout: float
) -> None:
    """Run a set-up command to completion (own process group, bounded), failing with its log tail."""
    with process_group(name, command, env, log_dir) as (process, log_path):
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"{name} did not finish within {timeout:.0f}s:\n{log_tail(log_path)}"
            ) from None
    if returncode != 0:
        raise HarnessError(f"{name} failed ({returncode}):\n{log_tail(log_path)}")


# ------------------------------------------------------------------------------------------ platform
def platform_env(local_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a local-mode platform whose state lives in `local_dir` and on free ports."""
    env = dict(os.environ)
    for inherited in (
        "PLATFORM_ENV",
        "PLATFORM_DUCKDB_PATH",
        "PLATFORM_LANDING_DIR",
        "PLATFORM_APP_DB_URL",
        "SALESFORCE_LOGIN_URL",
        "SALESFORCE_SUPPORT_LOGIN_URL",
        "HIGHTOUCH_API_BASE_URL",
    ):
        env.pop(inherited, None)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PLATFORM_ENV="local",
        PLATFORM_LOCAL_DIR=str(local_dir),
        DAGSTER_HOME=str(local_dir / "dagster_home"),
        SALESFORCE_SANDBOX_PORT=str(free_port()),
        SALESFORCE_SUPPORT_SANDBOX_PORT=str(free_port()),  # the sample's second org (orgs.yaml)
        HIGHTOUCH_SANDBOX_PORT=str(free_port()),
        SALESFORCE_SANDBOX_PUBSUB_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
        DAGSTER_DISABLE_TELEMETRY="1",
        # The daemon judges freshness every 30 s by default; a UI should show a verdict soon after a run.
        FRESHNESS_DAEMON_INTERVAL_SECONDS="5",
    )
    env.update(extra)
    return env


def prepare_instance(env: Mapping[str, str]) -> None:
    home = Path(env["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not INSTANCE_CONFIG.exists():
        raise HarnessError(
            f"{INSTANCE_CONFIG} is missing: the browser tests run on the local instance config."
        )
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")


def sample_company_command(env: Mapping[str, str], scale: str, landing_dir: Path) -> list[str | os.PathLike]:
    local = Path(env["PLATFORM_LOCAL_DIR"])
    return [
        VENV_BIN / "python",
        "-m",
        "local_stack.sample_company",
        "--scale",
        scale,
        "--seed",
        SAMPLE_SEED,
        "--landing-dir",
        landing_dir,
        "--salesforce-seed",
        local / "sandbox" / "salesforce_seed.json",
    ]


@contextlib.contextmanager
def sandboxes(env: Mapping[str, str], log_dir: Path) -> Iterator[None]:
    """The local Salesforce and Hightouch API servers on this harness's ports, for the block."""
    local = Path(env["PLATFORM_LOCAL_DIR"])
    sandbox_dir = local / "sandbox"
    sandbox_dir.mkdir(parents=True, exist_ok=True)
    sf_port, ht_port = env["SALESFORCE_SANDBOX_PORT"], env["HIGHTOUCH_SANDBOX_PORT"]
    servers = {
        "salesforce": (
            f"http://127.0.0.1:{sf_port}/__sandbox/health",
            ["--port", sf_port, "--db", sandbox_dir / "salesforce.sqlite3",
             "--seed-json", sandbox_dir / "salesforce_seed.json"],
        ),
        "salesforce-support": (  # the sample's second org (orgs.yaml), empty
            f"http://127.0.0.1:{env['SALESFORCE_SUPPORT_SANDBOX_PORT']}/__sandbox/health",
            ["--port", env["SALESFORCE_SUPPORT_SANDBOX_PORT"], "--pubsub-port", "0",
             "--db", sandbox_dir / "salesforce-support.sqlite3"],
        ),
        "hightouch": (
            f"http://127.0.0.1:{ht_port}/health",
            ["--port", ht_port, "--state-db", sandbox_dir / "hightouch.sqlite3",
             "--warehouse", local / "warehouse.duckdb"],
        ),
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        for name, (health, args) in servers.items():
            module = name.split("-")[0]
            command = [VENV_BIN / "python", "-m", f"local_stack.sandbox.{module}", *args]
            process, log_path = stack.enter_context(process_group(f"sandbox_{name}", command, env, log_dir))
            wait_for_http(health, process, log_path, seconds=60)
        yield


def materialize(env: Mapping[str, str], log_dir: Path, selection: str, timeout: float = 600) -> None:
    """Materialize `selection` through the dagster CLI into the harness's instance (runs are recorded)."""
    run_step(
        "materialize",
        [VENV_BIN / "dagster", "asset", "materialize", "-m", DEFINITIONS_MODULE, "--select", selection],
        env,
        log_dir,
        timeout=timeout,
    )


@contextlib.contextmanager
def dagster_dev(env: Mapping[str, str], log_dir: Path, startup_seconds: float = 180) -> Iterator[str]:
    """`dagster dev` (webserver and daemon) on a free loopback port; yields the base URL once loaded."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        VENV_BIN / "dagster",
        "dev",
        "-w",
        PROJECT_ROOT / "workspace.yaml",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "--live-data-poll-rate",
        "1000",
    ]
    with process_group("dagster_dev", command, env, log_dir) as (process, log_path):
        wait_for_http(f"{url}/server_info", process, log_path, seconds=startup_seconds)
        wait_for_code_location(url, process, log_path, seconds=startup_seconds)
        yield url


# ------------------------------------------------------------------------------------------- GraphQL
_WORKSPACE_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message
            errorChain { error { message } } } } } }
    ... on PythonError { message } } }
"""


def graphql(url: str, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """POST a query to the webserver's GraphQL endpoint; raise on transport or GraphQL errors."""
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.load(response)
    except urllib.error.HTTPError as error:
        raise HarnessError(
            f"GraphQL request to {url} failed ({error.code}): {error.read()[:2000]!r}"
        ) from None
    if payload.get("errors"):
        raise HarnessError(f"GraphQL errors from {url}: {payload['errors']}")
    return payload["data"]


def wait_for_code_location(url: str, process: subprocess.Popen, log_path: Path, seconds: float) -> None:
    """Wait until every code location is loaded; fail with the load error when one does not load."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HarnessError(f"dagster dev exited ({process.returncode}):\n{log_tail(log_path)}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            workspace = graphql(url, _WORKSPACE_QUERY)["workspaceOrError"]
            entries = workspace.get("locationEntries") or []
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    error = errors[0]["locationOrLoadError"]
                    causes = [link["error"]["message"] for link in error.get("errorChain") or []]
                    raise HarnessError(
                        f"code location {errors[0]['name']} failed to load:\n"
                        + "\n".join([error["message"], *causes])
                    )
                return
        time.sleep(0.5)
    raise HarnessError(
        f"the code locations at {url} did not load within {seconds:.0f}s:\n{log_tail(log_path)}"
    )


_INSTIGATORS_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    sensors { name sensorState { id status } }
    schedules { name scheduleState { id status } } } } } }
"""


def pause_automation(url: str, rounds: int = 5) -> list[str]:
    """Stop every running sensor and schedule, so only what a test launches runs; returns their names.

    The platform starts its sensors and cycle schedule RUNNING in local mode; a test instance would
    otherwise ingest and sync on its own while the tests click through the UI. Checked by reading the
    states back a few seconds after the last stop: a tick the daemon had in flight when a sensor was
    stopped can write its state back as RUNNING (seen once: a partition sensor then deleted a test's
    partitions), and is stopped again.
    """
    stopped: list[str] = []
    for _ in range(rounds):
        running = _running_instigators(url)
        if not running:
            return stopped
        for name, mutation, state_id in running:
            _stop_instigator(url, mutation, state_id)
            if name not in stopped:
                stopped.append(name)
        time.sleep(3)
    still = [name for name, _, _ in _running_instigators(url)]
    raise HarnessError(f"sensors or schedules still running after {rounds} rounds of stops: {still}")


def _running_instigators(url: str) -> list[tuple[str, str, str]]:
    """(name, the mutation that stops it, state id) of every running sensor and schedule."""
    running = []
    for repository in graphql(url, _INSTIGATORS_QUERY)["repositoriesOrError"]["nodes"]:
        for sensor in repository["sensors"]:
            if sensor["sensorState"]["status"] == "RUNNING":
                running.append((sensor["name"], "stopSensor", sensor["sensorState"]["id"]))
        for schedule in repository["schedules"]:
            if schedule["scheduleState"]["status"] == "RUNNING":
                running.append((schedule["name"], "stopRunningSchedule", schedule["scheduleState"]["id"]))
    return running


def _stop_instigator(url: str, mutation: str, state_id: str, attempts: int = 5) -> None:
    """Stop one sensor or schedule. The daemon of `dagster dev` ticks the same instigators and writes the
    same SQLite instance, so a stop can fail on a locked database (as a transport error or as Dagster's
    PythonError answer): retry a few times, then raise with Dagster's own message."""
    query = (
        f"mutation($id: String) {{ {mutation}(id: $id) {{ __typename ... on PythonError {{ message }} }} }}"
    )
    for attempt in range(1, attempts + 1):
        try:
            answer = graphql(url, query, {"id": state_id})[mutation]
            if answer["__typename"] != "PythonError":
                return
            error = answer["message"]
        except HarnessError as failure:
            error = str(failure)
        if attempt == attempts:
            raise HarnessError(f"{mutation} {state_id} failed {attempts} times: {error}")
        time.sleep(attempt)


@contextlib.contextmanager
def running_platform(scratch: Path, scale: str = "0.1") -> Iterator[RunningUI]:
    """The whole throwaway platform: `dagster dev` with automation paused, sample data, both sandboxes.

    The sample company is generated while `dagster dev` starts, into a side folder that is moved into
    the landing folder only once the sensors are stopped, so no sensor sees it first.
    """
    local_dir, log_dir = scratch / "local", scratch / "logs"
    env = platform_env(local_dir)
    prepare_instance(env)
    incoming = local_dir / "landing.incoming"
    with contextlib.ExitStack() as stack:
        generator, generator_log = stack.enter_context(
            process_group("sample_company", sample_company_command(env, scale, incoming), env, log_dir)
        )
        url = stack.enter_context(dagster_dev(env, log_dir))
        paused = pause_automation(url)
        try:
            returncode = generator.wait(timeout=300)
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"sample_company did not finish within 300s:\n{log_tail(generator_log)}"
            ) from None
        if returncode != 0:
            raise HarnessError(f"sample_company failed ({returncode}):\n{log_tail(generator_log)}")
        incoming.rename(local_dir / "landing")
        stack.enter_context(sandboxes(env, log_dir))
        yield RunningUI(url=url, env=env, local_dir=local_dir, log_dir=log_dir, paused=tuple(paused))
