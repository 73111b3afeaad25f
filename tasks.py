#!/usr/bin/env python3
"""The platform's front door. Needs only python3; it creates `.venv` and everything else on first use.

    python3 tasks.py cycle   set up, then run a full platform cycle on the embedded defaults and report
    python3 tasks.py test    set up, then run the checks CI runs (ruff, definitions, dbt parse, pytest, smoke)
    python3 tasks.py ui      set up, start the local sandboxes and `dagster dev` on the same local data
    python3 tasks.py bench   run the benchmarks, print their figures, write them into docs/performance.md
    python3 tasks.py screenshots   regenerate docs/screenshots with the browser tests

Set-up is incremental: each step records a fingerprint of its inputs and is skipped while they are unchanged.
SIGINT or SIGTERM stops every process tasks.py started (exit 128 + signal). `cycle` and `ui` hold a lock on
PLATFORM_LOCAL_DIR (refused while another holds it) and refuse a sandbox port something already answers on.
Standard library only above the point where `.venv` exists.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PYTHON = BIN / "python"
UV_VERSION = "0.13.9"
DEMO_SCALE = "1"
DEMO_SEED = "42"
CYCLE_JOB = "platform_cycle"
DEFINITIONS = "platform_assets.definitions"


def log(message: str) -> None:
    print(f"[tasks] {message}", flush=True)


# ------------------------------------------------------------------------------------------ children
# Every process tasks.py starts goes through spawn(): it gets its own session (so its process group holds it
# and whatever it starts, e.g. dagster dev's webserver, daemon and code servers) and is recorded here, so that
# a SIGINT or SIGTERM to tasks.py (Ctrl-C, a container stop, a CI timeout) stops all of them, not only us.
CHILDREN: list[subprocess.Popen] = []
# How long a child's group gets to exit after SIGTERM before SIGKILL: a blocked `dagster job execute` ignored
# SIGTERM and SIGINT for over 30 s, and a stop must stay prompt.
STOP_GRACE_SECONDS = float(os.environ.get("TASKS_STOP_GRACE_SECONDS", "10"))


# While exclusive() holds the lock on a local dir: the file where each child's group is recorded, so that the
# next tasks.py on that dir can stop what a SIGKILLed tasks.py left running (sandboxes holding the ports, a
# `dagster job execute` still writing the warehouse).
GROUPS_FILE: Path | None = None


def spawn(args: Sequence[str | os.PathLike], **popen: object) -> subprocess.Popen:
    process = subprocess.Popen([str(a) for a in args], start_new_session=True, **popen)
    CHILDREN.append(process)
    if GROUPS_FILE is not None:
        with open(GROUPS_FILE, "a") as groups:
            groups.write(f"{process.pid} {process_start(process.pid)}\n")
    return process


def process_start(pid: int) -> str | None:
    """When the process started (opaque), to tell it from a later process given the same pid; None if gone
    (or a zombie: dead, only waiting to be reaped)."""
    with contextlib.suppress(OSError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]  # fields 3 (state) and 22 (starttime)
    if Path("/proc/self/stat").exists():
        return None
    ps = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True)  # macOS
    return ps.stdout.strip() or None


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member exists that we may not signal: still alive
        return True
    return True


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """A signal arriving in the block is handled when it ends: a stop cut short by one would orphan processes
    (e.g. a SIGTERM while the sandboxes are stopped after a cycle finished)."""
    pending: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda signum, _: pending.append(signum)) for signum in watched}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending and callable(previous[pending[0]]):
            previous[pending[0]](pending[0], None)


def stop(processes: Sequence[subprocess.Popen], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM each process's group, wait up to `grace` seconds for the groups to empty, then SIGKILL them."""
    with signals_deferred():
        stop_now(processes, grace)


def stop_groups(pgids: Sequence[int], grace: float = STOP_GRACE_SECONDS) -> None:
    """Like stop(), for groups whose leader is not our child (left by an earlier tasks.py)."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(group_alive(pgid) for pgid in pgids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def reclaim_orphans(groups_file: Path) -> None:
    """Stop the process groups a dead tasks.py recorded and left running (we hold its lock, so it is dead).

    A group is ours while its leader has the recorded start time, or while the leader is gone but members
    remain (the kernel gives no new process a pid still in use as a group id)."""
    with contextlib.suppress(FileNotFoundError):
        left = []
        for line in groups_file.read_text().splitlines():
            pid, _, started = line.partition(" ")
            now = process_start(int(pid))
            if (now is not None and now == started) or (now is None and group_alive(int(pid))):
                left.append(int(pid))
        if left:
            log(f"stopping {len(left)} process group(s) an earlier, killed tasks.py left running: {left}")
            with signals_deferred():
                stop_groups(left)
    groups_file.write_text("")


def stop_now(processes: Sequence[subprocess.Popen], grace: float) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        # The leader must be reaped (poll) for its group to look empty; its own children may linger after it.
        while (process.poll() is None or group_alive(process.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
    for process in processes:
        # Also after the leader exited: a grandchild it left behind is still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        with contextlib.suppress(ValueError):
            CHILDREN.remove(process)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. Raised rather than handled in place: unwinding out of Popen.wait releases
    its lock, so stop() can then reap the waited-for child instead of leaving it a zombie."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_signal(signum: int, _frame: object) -> None:
    # Ignore a second Ctrl-C while stopping: an interrupted stop is what orphans processes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def stopping_on_exit() -> Iterator[None]:
    """Stop, newest first (dagster before the sandboxes it talks to), what the block started and left running,
    whether it ends normally, by an error or by Interrupted."""
    first = len(CHILDREN)
    try:
        yield
    finally:
        leftover = list(reversed(CHILDREN[first:]))
        if leftover:
            log(f"stopping {len(leftover)} started process group(s)")
            stop(leftover)


def run(args: Sequence[str | os.PathLike], env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
    returncode = call(args, env, cwd)
    if returncode != 0:
        sys.exit(f"[tasks] failed ({returncode}): {' '.join(str(a) for a in args)}")


def call(args: Sequence[str | os.PathLike], env: dict[str, str] | None = None, cwd: Path = ROOT) -> int:
    log("$ " + " ".join(str(a) for a in args))
    process = spawn(args, cwd=cwd, env=env)
    returncode = process.wait()
    CHILDREN.remove(process)
    return returncode


# -------------------------------------------------------------------------------- one run at a time
@contextlib.contextmanager
def exclusive(local_dir: Path, command: str) -> Iterator[None]:
    """Hold an exclusive lock on `local_dir` for the block; refuse up front if another tasks.py holds it.

    Two runs on one local dir would share its instance, warehouse and sandbox ports. flock is released by
    the kernel when its holder dies, so a lock file left by a killed run is simply taken over.
    """
    local_dir.mkdir(parents=True, exist_ok=True)
    path = local_dir / "tasks.lock"
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            sys.exit(
                f"[tasks] refused: {holder} is running on {local_dir} (lock {path}). Stop it first, or give "
                "this run its own PLATFORM_LOCAL_DIR, SALESFORCE_SANDBOX_PORT and HIGHTOUCH_SANDBOX_PORT."
            )
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()} (python3 tasks.py {command})\n")
        lock.flush()
        global GROUPS_FILE
        GROUPS_FILE = local_dir / "tasks.groups"
        reclaim_orphans(GROUPS_FILE)
        try:
            with stopping_on_exit():  # before the lock is released: the next run must not meet our processes
                yield
        finally:
            GROUPS_FILE = None


# Files that tools write inside the set-up's inputs; they must not make set-up run again.
GENERATED = {".meltano", "__pycache__", "target", "logs", "dbt_packages", "build"}


def fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if any(part in GENERATED or part.endswith(".egg-info") for part in file.parts):
                continue
            digest.update(str(file.relative_to(ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def step(name: str, inputs: Sequence[Path], action) -> None:
    """Run `action` unless its inputs are unchanged since it last succeeded."""
    stamp = VENV / f".setup-{name}"
    current = fingerprint(*inputs)
    if stamp.exists() and stamp.read_text() == current:
        return
    log(f"set-up: {name}")
    action()
    stamp.write_text(current)


def platform_env(local_dir: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    local = Path(local_dir or env.get("PLATFORM_LOCAL_DIR", ROOT / ".local")).resolve()
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(VENV),
        PLATFORM_LOCAL_DIR=str(local),
        DAGSTER_HOME=str(local / "dagster_home"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------- set-up
def install_python_environment() -> None:
    uv = BIN / "uv"
    if not uv.exists():
        bootstrap = ROOT / ".local" / "bootstrap"
        if not (bootstrap / "bin" / "uv").exists():
            run([sys.executable, "-m", "venv", bootstrap])
            run([bootstrap / "bin" / "pip", "install", "--quiet", f"uv=={UV_VERSION}"])
        uv = bootstrap / "bin" / "uv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENV)}
    # Bytecode is compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on CI machines) Python
    # would otherwise recompile every imported module in every process (~6 CPU-s per Dagster run).
    run([uv, "sync", "--frozen", "--compile-bytecode", "--python", sys.executable], env=env)


# The local stack's plugins (tap-postgres for the application database, which tests exercise); the Snowflake
# loader is installed by the production image only.
MELTANO_PLUGINS = {
    "extractor": ["tap-landing", "tap-salesforce-bulk", "tap-postgres"],
    "loader": ["target-duckdb", "target-duckdb-bulk"],
}


def install_meltano_plugins() -> None:
    env = platform_env(UV_COMPILE_BYTECODE="1")  # Meltano installs with uv: compile as for .venv
    for plugin_type, names in MELTANO_PLUGINS.items():
        run([BIN / "meltano", "install", plugin_type, *names], env=env, cwd=ROOT / "meltano")


def prepare_dbt_manifest() -> None:
    run([PYTHON, "-m", "platform_assets.components.dbt_domains"], env=platform_env())


def install_dbt_packages() -> None:
    run([PYTHON, "-m", "platform_assets.components.dbt_domains", "deps"], env=platform_env())


def setup() -> None:
    tasks = ROOT / "tasks.py"  # a change to how set-up installs re-runs it
    step("python", [ROOT / "pyproject.toml", ROOT / "uv.lock", tasks], install_python_environment)
    meltano = ROOT / "meltano"
    step(
        "meltano",
        [meltano / "meltano.yml", meltano / "extractors", meltano / "loaders", tasks],
        install_meltano_plugins,
    )
    dbt = ROOT / "dbt_project"
    packages = [dbt / name for name in ("packages.yml", "dependencies.yml") if (dbt / name).exists()]
    if packages:  # `dbt deps` only when the declarations change (it may need the network)
        step("dbt-packages", packages, install_dbt_packages)
    step("dbt", [dbt], prepare_dbt_manifest)


def prepare_instance(env: dict[str, str]) -> None:
    home = Path(env["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    # Per-pool limits live in the instance database, not in dagster.yaml: apply them once per instance.
    pools = ROOT / "deploy" / "pools.yaml"
    applied = home / ".pools-applied"
    if not applied.exists() or applied.read_text() != pools.read_text():
        run([PYTHON, ROOT / "deploy" / "apply_pools.py", "local"], env=env)
        applied.write_text(pools.read_text())


def reap_dead_runs(env: dict[str, str]) -> None:
    """Fail the runs of the local instance whose process died (e.g. a SIGKILLed cycle) and free their pool
    slots, or a dead run's `warehouse` slot blocks this cycle (platform_assets/automation/dead_runs.py)."""
    run([PYTHON, "-m", "platform_assets.automation.dead_runs"], env=env)


def generate_sample_company(env: dict[str, str], scale: str = DEMO_SCALE) -> None:
    local = Path(env["PLATFORM_LOCAL_DIR"])
    run(
        [
            PYTHON,
            "-m",
            "local_stack.sample_company",
            "--scale",
            scale,
            "--seed",
            DEMO_SEED,
            "--landing-dir",
            local / "landing",
        ],
        env=env,
    )


# ----------------------------------------------------------------------------------------- sandboxes
def wait_for(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
            return
        if process.poll() is not None:  # e.g. it lost a race for its port: no point waiting the full time
            name = " ".join(process.args[:3])
            sys.exit(f"[tasks] {name} exited ({process.returncode}) before {url} answered")
        time.sleep(0.3)
    sys.exit(f"[tasks] {url} did not answer within {seconds:.0f}s")


def port_holder(port: int) -> str:
    """Best effort (Linux /proc): which process listens on 127.0.0.1:`port`, as "pid N (command line)"."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                pid = fd_dir.parent.name
                command = (fd_dir.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                return f"pid {pid} ({command})"
    return "a process this user cannot see"


def require_free_port(port: int, name: str, variable: str = "") -> None:
    """Refuse to start a sandbox on a port something already answers on: our health check would be answered
    by it, and this run would silently talk to another run's sandbox (and fail when that run stops)."""
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex(("127.0.0.1", port)) != 0:
            return
    sys.exit(
        f"[tasks] refused: port {port} for the {name} sandbox is already in use by {port_holder(port)}. "
        f"Stop it, or set {variable or name.upper() + '_SANDBOX_PORT'} to a free port."
    )


def other_salesforce_orgs(env: dict[str, str]) -> list[dict]:
    """The orgs of defs/activation/salesforce/orgs.yaml besides the default one (read by the venv's Python:
    this script runs without PyYAML)."""
    output = subprocess.run(
        [PYTHON, "-m", "platform_assets.integrations.salesforce.orgs"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [org for org in json.loads(output) if not org["default"]]


@contextlib.contextmanager
def sandboxes(env: dict[str, str]) -> Iterator[None]:
    """Start the local Salesforce and Hightouch sandboxes (real HTTP servers on loopback) for the block."""
    local = Path(env["PLATFORM_LOCAL_DIR"])
    sandbox_dir = local / "sandbox"
    sandbox_dir.mkdir(parents=True, exist_ok=True)
    sf_port = env.get("SALESFORCE_SANDBOX_PORT", "8791")
    ht_port = env.get("HIGHTOUCH_SANDBOX_PORT", "8792")
    pubsub_port = env.get("SALESFORCE_SANDBOX_PUBSUB_PORT", "8793")  # its Pub/Sub API (change events)
    commands = {
        f"http://127.0.0.1:{sf_port}/__sandbox/health": [
            PYTHON,
            "-m",
            "local_stack.sandbox.salesforce",
            "--port",
            sf_port,
            "--pubsub-port",
            pubsub_port,
            "--db",
            sandbox_dir / "salesforce.sqlite",
            "--seed-scale",
            DEMO_SCALE,
            "--seed",
            DEMO_SEED,
        ],
        f"http://127.0.0.1:{ht_port}/health": [
            PYTHON,
            "-m",
            "local_stack.sandbox.hightouch",
            "--port",
            ht_port,
            "--state-db",
            sandbox_dir / "hightouch.sqlite3",
            "--warehouse",
            local / "warehouse.duckdb",
        ],
    }
    landing_url = env.get("PLATFORM_LANDING_URL", "")
    if landing_url.startswith("s3://"):  # the landing drops in a bucket: the S3 sandbox holds them, first
        s3_port = env.get("S3_SANDBOX_PORT", "8794")
        bucket = urllib.parse.urlsplit(landing_url).netloc
        commands = {
            f"http://127.0.0.1:{s3_port}/{bucket}/.sandbox-ready": [
                PYTHON,
                "-m",
                "local_stack.sandbox.s3",
                "--port",
                s3_port,
                "--landing-url",
                landing_url,
                "--seed-from",
                local / "landing",
            ],
            **commands,
        }
        require_free_port(int(s3_port), "S3")
    log_names, others = {}, []
    for org in other_salesforce_orgs(env):  # one more sandbox per org of orgs.yaml, empty, its own file
        health = f"http://127.0.0.1:{org['port']}/__sandbox/health"
        log_names[health] = f"salesforce-{org['org']}"
        others.append(f"Salesforce org {org['org']} on :{org['port']}")
        commands[health] = [
            *commands[f"http://127.0.0.1:{sf_port}/__sandbox/health"][:3],
            "--port",
            str(org["port"]),
            "--pubsub-port",
            "0",
            "--db",
            sandbox_dir / f"salesforce-{org['org']}.sqlite",
        ]
        require_free_port(org["port"], f"Salesforce {org['org']}", org["port_env"])
    require_free_port(int(sf_port), "Salesforce")
    require_free_port(int(ht_port), "Hightouch")
    require_free_port(int(pubsub_port), "Salesforce Pub/Sub", "SALESFORCE_SANDBOX_PUBSUB_PORT")
    with stopping_on_exit():  # the sandboxes, and whatever the block started that still runs
        for health, command in commands.items():
            name = log_names.get(health, command[2].rsplit(".", 1)[-1])
            with open(sandbox_dir / f"{name}.log", "ab") as log_file:
                sandbox = spawn(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
            wait_for(health, sandbox)
        s3 = [f"S3 ({landing_url}) on :{s3_port}"] if landing_url.startswith("s3://") else []
        up = [f"Salesforce on :{sf_port}", *others, f"Hightouch on :{ht_port}", *s3]
        log(f"sandboxes up: {', '.join(up)} (logs in {sandbox_dir})")
        yield


# ------------------------------------------------------------------------------------------ commands
def cycle(_: argparse.Namespace) -> None:
    env = platform_env()
    with exclusive(Path(env["PLATFORM_LOCAL_DIR"]), "cycle"):
        setup()
        prepare_instance(env)
        reap_dead_runs(env)
        generate_sample_company(env)
        with sandboxes(env):
            failed = call([BIN / "dagster", "job", "execute", "-m", DEFINITIONS, "-j", CYCLE_JOB], env=env)
            if failed:  # e.g. one stream's bad file: still run what does not depend on what failed
                log("the cycle run failed; continuing with the assets that do not depend on what failed")
                call([PYTHON, "-m", "platform_assets.automation.continuation"], env=env)
        run([PYTHON, "-m", "platform_assets.report"], env=env)
        if failed:
            sys.exit(f"[tasks] the {CYCLE_JOB} run failed (see its error above and in the UI)")


def ui(_: argparse.Namespace) -> None:
    env = platform_env()
    with exclusive(Path(env["PLATFORM_LOCAL_DIR"]), "ui"):
        setup()
        prepare_instance(env)
        reap_dead_runs(env)
        generate_sample_company(env)
        port = env.get("DAGSTER_UI_PORT", "3000")  # another port lets a second checkout run its own UI
        with sandboxes(env):
            dagster = spawn([BIN / "dagster", "dev", "-w", "workspace.yaml", "-p", port], cwd=ROOT, env=env)
            dagster.wait()


def test(args: argparse.Namespace) -> None:
    setup()
    with tempfile.TemporaryDirectory(prefix="platform-test-") as scratch:
        env = platform_env(Path(scratch) / "local")
        prepare_instance(env)
        run([BIN / "ruff", "check", "."], env=env)
        run([BIN / "ruff", "format", "--check", "."], env=env)
        run([BIN / "dagster", "definitions", "validate", "-w", "workspace.yaml"], env=env)
        run([BIN / "dg", "check", "defs"], env=env)
        prepare_dbt_manifest()
        run([BIN / "pytest", *args.pytest_args], env=env)
        smoke(env)


def smoke(env: dict[str, str]) -> None:
    """Materialize ingestion and transformation through the dagster CLI on a small generated dataset."""
    log("smoke: ingestion and transformation through the dagster CLI")
    generate_sample_company(env, scale="0.2")
    with sandboxes(env):
        run(
            [
                BIN / "dagster",
                "asset",
                "materialize",
                "-m",
                DEFINITIONS,
                "--select",
                "tag:layer=ingestion or tag:layer=transformation",
            ],
            env=env,
        )
    run([PYTHON, "-m", "platform_assets.report"], env=env)


def screenshots(_: argparse.Namespace) -> None:
    setup()
    run([PYTHON, "-m", "local_stack.browser.screenshots"], env=platform_env())


def bench(_: argparse.Namespace) -> None:
    setup()
    run([PYTHON, "benchmarks/run.py"], env=platform_env())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="create .venv, install Meltano plugins, prepare dbt's manifest")
    commands.add_parser("cycle", help="run a full platform cycle on the embedded defaults")
    test_parser = commands.add_parser("test", help="run the checks CI runs")
    test_parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    commands.add_parser("ui", help="open the Dagster UI on the local data")
    commands.add_parser("bench", help="run the benchmarks; their figures go into docs/performance.md")
    commands.add_parser("screenshots", help="regenerate docs/screenshots with the browser tests")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    handlers = {
        "setup": lambda _: setup(),
        "cycle": cycle,
        "test": test,
        "ui": ui,
        "bench": bench,
        "screenshots": screenshots,
    }
    try:
        with stopping_on_exit():
            handlers[args.command](args)
    except Interrupted as interrupted:
        log(f"{interrupted}: stopped")
        sys.exit(128 + interrupted.signum)  # non-zero, as a shell reports a process ended by this signal


if __name__ == "__main__":
    main()
