"""tasks.py stops every process it started on SIGINT and SIGTERM, and refuses a second run on its local dir.

`tasks.py ui` runs as a real subprocess on its own local dir and free ports; the processes it started are
found through /proc (parent links and session ids: each child has its own session, which its own children
share), so the test sees dagster dev's webserver and daemon too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

# Generous bounds, polled: start-up includes set-up checks, the sample company and both sandboxes.
START_SECONDS = 300
STOP_SECONDS = 60  # tasks.py's grace before SIGKILL is 10 s; the rest is slack for a loaded machine


def load_tasks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tasks_under_test", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes() -> dict[int, tuple[int, int, str]]:
    """Every live (non-zombie) process: pid -> (parent pid, session id, command line)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # it exited while we looked
        if fields[0] != "Z":
            table[int(stat.parent.name)] = (int(fields[1]), int(fields[3]), command)
    return table


def descendants(root: int) -> dict[int, str]:
    table = processes()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, command) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = command
                frontier.append(pid)
    return found


def poll(condition: Callable[[], object], seconds: float, what: str) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.3)
    raise AssertionError(f"not within {seconds:.0f}s: {what}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def ui_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PLATFORM_LOCAL_DIR": str(tmp_path / "local"),
        "SALESFORCE_SANDBOX_PORT": str(free_port()),
        "SALESFORCE_SUPPORT_SANDBOX_PORT": str(free_port()),  # the sample's second org (orgs.yaml)
        "HIGHTOUCH_SANDBOX_PORT": str(free_port()),
        "SALESFORCE_SANDBOX_PUBSUB_PORT": str(free_port()),
        "DAGSTER_UI_PORT": str(free_port()),
    }


@pytest.fixture
def ui_run(ui_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen]:
    with open(tmp_path / "tasks.log", "wb") as output:
        run = subprocess.Popen(
            [sys.executable, ROOT / "tasks.py", "ui"], cwd=ROOT, env=ui_env, stdout=output, stderr=output
        )
    yield run
    if run.poll() is None:  # a failed test must not leave its own run behind either
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=STOP_SECONDS)


def started(run: subprocess.Popen, env: dict[str, str], log: Path) -> dict[int, str]:
    """Wait until both sandboxes answer and dagster dev runs; return what tasks.py started, by pid."""
    sandboxes = [
        f"http://127.0.0.1:{env['SALESFORCE_SANDBOX_PORT']}/__sandbox/health",
        f"http://127.0.0.1:{env['SALESFORCE_SUPPORT_SANDBOX_PORT']}/__sandbox/health",
        f"http://127.0.0.1:{env['HIGHTOUCH_SANDBOX_PORT']}/health",
    ]

    def up() -> dict[int, str] | None:
        assert run.poll() is None, f"tasks.py ui exited ({run.returncode}):\n{log.read_text()}"
        children = descendants(run.pid)
        dagster = any(" dev -w workspace.yaml" in command for command in children.values())
        return children if dagster and all(answers(url) for url in sandboxes) else None

    return poll(up, START_SECONDS, "sandboxes answer and dagster dev runs")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_started_process(
    ui_run: subprocess.Popen, ui_env: dict[str, str], tmp_path: Path, signum: int
) -> None:
    children = started(ui_run, ui_env, tmp_path / "tasks.log")
    time.sleep(2)  # let dagster dev start its webserver and daemon: they must be stopped too
    children |= descendants(ui_run.pid)
    table = processes()
    sessions = {session for pid, (_, session, _) in table.items() if pid in children}
    direct = {pid for pid, (ppid, _, _) in table.items() if ppid == ui_run.pid}

    ui_run.send_signal(signum)

    assert ui_run.wait(timeout=STOP_SECONDS) == 128 + signum

    def remaining() -> dict[int, str]:
        return {
            pid: command
            for pid, (_, session, command) in processes().items()
            if pid in children or session in sessions
        }

    deadline = time.monotonic() + 10  # tasks.py waited for them; allow the kernel a moment to reap
    while remaining() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert remaining() == {}
    # tasks.py reaped its own children: no zombie of theirs is left for an init that may never reap it
    assert [pid for pid in direct if Path(f"/proc/{pid}").exists()] == []


def test_a_second_run_on_the_same_local_dir_is_refused(ui_run: subprocess.Popen, ui_env, tmp_path) -> None:
    started(ui_run, ui_env, tmp_path / "tasks.log")

    second = subprocess.run(
        [sys.executable, ROOT / "tasks.py", "cycle"],
        cwd=ROOT,
        env=ui_env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert second.returncode != 0
    assert f"refused: pid {ui_run.pid} (python3 tasks.py ui) is running on" in second.stderr


def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path: Path) -> None:
    tasks = load_tasks()
    lock = tmp_path / "tasks.lock"
    lock.write_text("pid 999999999 (python3 tasks.py cycle)\n")  # no process holds it

    with tasks.exclusive(tmp_path, "cycle"):
        assert lock.read_text() == f"pid {os.getpid()} (python3 tasks.py cycle)\n"


def test_a_sandbox_port_in_use_is_refused_naming_its_holder() -> None:
    tasks = load_tasks()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(SystemExit) as refused:
            tasks.require_free_port(port, "Salesforce")

    message = str(refused.value)
    assert f"port {port} for the Salesforce sandbox is already in use by pid {os.getpid()} (" in message
    assert "SALESFORCE_SANDBOX_PORT" in message


# A child that ignores SIGTERM, as a blocked `dagster job execute` did, with a grandchild that does too.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if sys.argv[1:] != ["grandchild"]:
    subprocess.Popen([sys.executable, __file__, "grandchild"])
time.sleep(600)
"""


@pytest.fixture
def stubborn(tmp_path: Path) -> Iterator[tuple[ModuleType, subprocess.Popen, dict[int, str]]]:
    """tasks.py loaded in this process, a stubborn child it spawned, and the child's grandchild."""
    tasks = load_tasks()
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    child = tasks.spawn([sys.executable, script])
    try:
        # Its grandchild runs, so the child has passed its SIG_IGN line: SIGTERM no longer ends it.
        grandchildren = poll(lambda: descendants(child.pid), 30, "the child starts its grandchild")
        yield tasks, child, grandchildren
    finally:
        with contextlib.suppress(ProcessLookupError):  # a failed test must not leave them behind
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)


def test_a_child_ignoring_sigterm_is_killed_with_its_group_after_the_grace(stubborn) -> None:
    tasks, child, grandchildren = stubborn
    began = time.monotonic()

    tasks.stop([child], grace=1)

    assert time.monotonic() - began < 30
    assert child.returncode == -signal.SIGKILL
    assert [pid for pid in [child.pid, *grandchildren] if pid in processes()] == []
    assert child not in tasks.CHILDREN


def test_a_signal_during_a_stop_is_handled_after_it(stubborn) -> None:
    tasks, child, _ = stubborn
    previous = signal.signal(signal.SIGTERM, tasks.on_signal)
    try:
        threading.Timer(0.3, os.kill, [os.getpid(), signal.SIGTERM]).start()  # while stop() waits the grace

        with pytest.raises(tasks.Interrupted):
            tasks.stop([child], grace=2)

        assert child.returncode == -signal.SIGKILL  # the stop ran to its end first
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # on_signal ignored both while stopping


# A tasks.py stand-in: takes the lock on a local dir, starts a child group (child and grandchild), waits.
HOLDER = """
import importlib.util, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("tasks_holder", sys.argv[1])
tasks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tasks)
with tasks.exclusive(Path(sys.argv[2]), "cycle"):
    tasks.spawn([sys.executable, "-c", "import subprocess, sys, time; "
                 "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"])
    time.sleep(600)
"""


def test_processes_left_by_a_sigkilled_tasks_py_are_stopped_by_the_next_one(tmp_path: Path) -> None:
    local = tmp_path / "local"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, ROOT / "tasks.py", local])
    orphans = poll(
        lambda: len(found := descendants(holder.pid)) >= 2 and found, 60, "the holder's child group"
    )
    holder.kill()  # SIGKILL: no chance to stop its children
    holder.wait(timeout=30)
    assert all(pid in processes() for pid in orphans), "the children outlive a SIGKILLed tasks.py"
    # A recorded pid now held by an unrelated process (another start time) must be left alone.
    unrelated = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    try:
        with open(local / "tasks.groups", "a") as groups:
            groups.write(f"{unrelated.pid} 1\n")
        tasks = load_tasks()

        with tasks.exclusive(local, "cycle"):
            assert [pid for pid in orphans if pid in processes()] == []
            assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait(timeout=30)
