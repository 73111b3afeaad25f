"""Running `meltano run <tap> <target>` for the platform: environment, stream selection, logs, counts.

- Plugin settings are declared per source (and per loader) in defs/ingestion/sources.yaml as templates
  over the platform environment (platform_assets/env_templates.py), resolved here, at run time, into
  Meltano's setting env vars (<PLUGIN>_<SETTING>); secrets pass through the process environment only and
  are never logged.
- Only the requested streams run: `<TAP>__SELECT` overrides the extractor's `select`. State is one Meltano
  state id per pipeline (`<environment>:<tap>-to-<target>`); the tap reads the whole state and writes it
  back, so bookmarks of streams outside the subset are kept. A full refresh uses Meltano's
  `--full-refresh`, whose state is merged into the stored one, again keeping the other streams' bookmarks.
- Locally every PLATFORM_LOCAL_DIR gets its own Meltano system directory (run files, system database with
  the state) whose plugin venvs link to the project's installed ones, so two local environments (or two
  engineers) never share Meltano state.
- JSON log lines go to the caller's logger as they arrive; the extractor's `record_count` METRIC counters
  (deltas; a loader's own counters are not extracted rows) are summed per stream; a failure raises
  `MeltanoRunError` with the plugin's own error text.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from platform_assets import environment
from platform_assets.env_templates import SettingTemplate, resolve_settings
from platform_assets.environment import PlatformEnvironment
from platform_assets.integrations.meltano.project import MeltanoProjectError, load_project

PLUGIN_TYPES = ("extractors", "loaders")
# A tap that fails one stream and goes on reports it so; the other streams still load.
FAILED_STREAM = re.compile(r"\bstream failed: stream=(?P<stream>\S+) (?P<message>.*)")
# A tap that leaves input for later (e.g. a line still being written) says so per stream.
WAITING = re.compile(r"\bline waiting: stream=(?P<stream>\S+) (?P<message>.*)")
_ENV_NAME = re.compile(r"[^A-Za-z0-9]")

LogFn = Callable[[str, str], None]
"""(level, message) -> None, e.g. a Dagster logger's methods behind a small adapter."""


class MeltanoRunError(RuntimeError):
    """`meltano run` failed; the message carries the plugins' own error lines."""

    def __init__(self, message: str, result: RunResult):
        super().__init__(message)
        self.result = result

    def blocked_by_another_run(self) -> bool:
        """Meltano refused because its system database records this pipeline as running: either another
        run loads it now, or one died (SIGKILL) and Meltano waits for its heartbeat to go stale (5 min)."""
        return "pipeline is already running" in str(self)


@dataclass
class RunResult:
    extractor: str
    loader: str
    state_id: str
    streams: tuple[str, ...]
    returncode: int = 0
    duration_seconds: float = 0.0
    rows_extracted: dict[str, int] = field(default_factory=dict)
    failed_streams: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, list[str]] = field(default_factory=dict)
    error_lines: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0


def plugin_env_name(plugin: str) -> str:
    """Meltano's env var prefix of a plugin: tap-salesforce-bulk -> TAP_SALESFORCE_BULK."""
    return _ENV_NAME.sub("_", plugin).upper()


def state_id(env: PlatformEnvironment, extractor: str, loader: str) -> str:
    return f"{env.mode.value}:{extractor}-to-{loader}"


def plugin_settings(
    env: PlatformEnvironment,
    extractor: str,
    loader: str,
    source: str,
    extractor_settings: Mapping[str, SettingTemplate] | None = None,
    loader_settings: Mapping[str, SettingTemplate] | None = None,
) -> dict[str, str]:
    """Meltano's setting env vars for one pipeline: the declared settings, resolved now, and the raw schema.

    Every loader writes to `raw_<source>` (the schema the stream assets read), so that one stays in code.
    """
    settings = {
        "PLATFORM_SCHEMA_PREFIX": env.schema_prefix,
        f"{plugin_env_name(loader)}_DEFAULT_TARGET_SCHEMA": env.schema(f"raw_{source}"),
    }
    for plugin, templates in ((extractor, extractor_settings), (loader, loader_settings)):
        for key, value in resolve_settings(templates or {}, env).items():
            settings[f"{plugin_env_name(plugin)}_{plugin_env_name(key)}"] = value
    return settings


def local_sys_dir(env: PlatformEnvironment, project_root: Path, plugins: Iterable[tuple[str, str]]) -> Path:
    """This local environment's Meltano system dir (plugin venvs linked to the installed ones)."""
    sys_dir = env.local_dir / "meltano"
    for plugin_type, name in plugins:
        installed = project_root / ".meltano" / plugin_type / name / "venv"
        if not (installed / "bin").is_dir():
            raise FileNotFoundError(
                f"Meltano plugin {name!r} is not installed ({installed} is missing): run "
                f"`meltano install {plugin_type[:-1]} {name}` in {project_root} (the set-up does this)"
            )
        link = sys_dir / plugin_type / name / "venv"
        if not (link.is_symlink() and link.resolve() == installed.resolve()):
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(installed, target_is_directory=True)
    return sys_dir


def meltano_env(
    env: PlatformEnvironment, project_root: Path, plugins: Iterable[tuple[str, str]] = ()
) -> dict[str, str]:
    """The process environment for any `meltano` command of this platform environment."""
    process_env = dict(os.environ)
    # The meltano CLI and the uv it installs plugins with live next to this interpreter.
    process_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), process_env.get("PATH", "")])
    process_env["MELTANO_PROJECT_ROOT"] = str(project_root)
    process_env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    process_env["MELTANO_ENVIRONMENT"] = env.mode.value
    if env.is_local:
        process_env["MELTANO_SYS_DIR_ROOT"] = str(local_sys_dir(env, project_root, plugins))
        process_env.pop("MELTANO_DATABASE_URI", None)  # default: sqlite in the sys dir
    return process_env


def extractor_venv(project_root: Path, extractor: str) -> str:
    """The installed plugin whose venv runs `extractor` (its parent, for one that inherits)."""
    try:
        declared = load_project(project_root).extractors.get(extractor)
    except MeltanoProjectError:  # no readable meltano.yml here: the plugin is its own
        return extractor
    return declared.venv_name if declared is not None and declared.venv_name else extractor


def build_env(
    env: PlatformEnvironment,
    project_root: Path,
    extractor: str,
    loader: str,
    source: str,
    tap_streams: Iterable[str],
    extractor_settings: Mapping[str, SettingTemplate] | None = None,
    loader_settings: Mapping[str, SettingTemplate] | None = None,
) -> dict[str, str]:
    venv = extractor_venv(project_root, extractor)
    process_env = meltano_env(env, project_root, [("extractors", venv), ("loaders", loader)])
    process_env.update(plugin_settings(env, extractor, loader, source, extractor_settings, loader_settings))
    process_env[f"{plugin_env_name(extractor)}__SELECT"] = json.dumps([f"{s}.*" for s in tap_streams])
    return process_env


class _LogReader:
    """Parses Meltano's JSON log lines: forwards them, sums record counts, keeps error context."""

    def __init__(self, log: LogFn, extractor: str, loader: str):
        self.log = log
        self.extractor = extractor
        self.plugins = {"extractors": extractor, "loaders": loader}
        self.exit_codes: dict[str, int] = {}  # plugin -> non-zero exit code, from Meltano's failure event
        self.rows: dict[str, int] = defaultdict(int)
        self.failed_streams: dict[str, str] = {}
        self.waiting: dict[str, list[str]] = defaultdict(list)
        self.errors: list[str] = []
        self.tails: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=25))

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        if not line.strip():
            return
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise ValueError
        except ValueError:
            self.tails["meltano"].append(line)
            self.log("info", line)
            return
        message = str(event.get("event", ""))
        plugin = str(event.get("name") or event.get("string_id") or "meltano")
        level = str(event.get("level", "info"))
        if message.startswith("METRIC: "):
            if plugin == self.extractor:  # SDK-based loaders (target-snowflake) count records too
                self._metric(message[len("METRIC: ") :])
            self.log("debug", f"[{plugin}] {message}")
            return
        self.tails[plugin].append(message)
        if failed := FAILED_STREAM.search(message):
            self.failed_streams[failed["stream"]] = failed["message"]
            level = "error"
        elif waiting := WAITING.search(message):
            self.waiting[waiting["stream"]].append(waiting["message"])
        for plugin_type, code in (event.get("exit_codes") or {}).items():
            if code and plugin_type in self.plugins:
                self.exit_codes[self.plugins[plugin_type]] = int(code)
        if level in ("error", "critical") and message not in self.errors:
            self.errors.append(f"[{plugin}] {message}" + (f": {event['err']}" if event.get("err") else ""))
        self.log(
            "error" if level in ("error", "critical") else "warning" if level == "warning" else "info",
            f"[{plugin}] {message}",
        )

    def _metric(self, payload: str) -> None:
        try:
            metric = json.loads(payload)
        except ValueError:
            return
        if metric.get("metric") == "record_count" and metric.get("type") == "counter":
            stream = (metric.get("tags") or {}).get("stream")
            if stream:
                self.rows[stream] += int(metric.get("value") or 0)

    def error_text(self) -> list[str]:
        """Meltano's error events, then each plugin's last exception line (a traceback's final line).

        A plugin that exited non-zero with neither (e.g. killed by a signal) gets its exit code and its last
        line of output."""
        lines = list(self.errors)
        for plugin, tail in self.tails.items():
            if plugin == "meltano":
                continue
            final = [m for m in tail if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Failure)\b", m)]
            if final:
                lines.append(f"[{plugin}] {final[-1]}")
        explained = {line.split("]", 1)[0][1:] for line in lines}
        for plugin, code in self.exit_codes.items():
            if plugin not in explained:
                last = f"; its last output: {self.tails[plugin][-1]}" if self.tails[plugin] else ""
                lines.append(f"[{plugin}] exited with code {code}{_signal_name(code)}{last}")
        return lines


def _signal_name(code: int) -> str:
    """' (SIGABRT)' for an exit code that means death by a signal (negative, or 128 + the signal)."""
    number = -code if code < 0 else code - 128 if code > 128 else 0
    try:
        return f" ({signal.Signals(number).name})" if number else ""
    except ValueError:
        return ""


def run_pipeline(
    *,
    extractor: str,
    loader: str,
    source: str,
    tap_streams: Iterable[str],
    full_refresh: bool = False,
    force: bool = False,
    log: LogFn,
    env: PlatformEnvironment | None = None,
    project_root: Path = environment.MELTANO_PROJECT_DIR,
    extra_env: Mapping[str, str] | None = None,
    extractor_settings: Mapping[str, SettingTemplate] | None = None,
    loader_settings: Mapping[str, SettingTemplate] | None = None,
) -> RunResult:
    """Run one extractor->loader pipeline for the given tap streams; raise MeltanoRunError on failure.

    When only some streams fail (e.g. malformed files), the result is still returned through the
    raised error's `.result`, with `failed_streams` naming them, so callers can report the others.
    """
    env = env or environment.current()
    streams = tuple(tap_streams)
    result = RunResult(extractor, loader, state_id(env, extractor, loader), streams)
    process_env = build_env(
        env, project_root, extractor, loader, source, streams, extractor_settings, loader_settings
    )
    process_env.update(extra_env or {})
    command = ["meltano", f"--environment={env.mode.value}", "--log-format=json", "run"]
    if full_refresh:
        command.append("--full-refresh")
    if force:
        command.append("--force")
    command += [extractor, loader]
    log(
        "info", f"Running `{' '.join(command)}` for streams {', '.join(streams)} (state id {result.state_id})"
    )
    reader = _LogReader(log, extractor, loader)
    started = time.monotonic()
    with subprocess.Popen(
        command,
        cwd=project_root,
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            reader.feed(line)
        result.returncode = process.wait()
    result.duration_seconds = time.monotonic() - started
    result.rows_extracted = {stream: reader.rows.get(stream, 0) for stream in streams}
    result.failed_streams = dict(reader.failed_streams)
    result.waiting = dict(reader.waiting)
    if result.returncode != 0:
        result.error_lines = reader.error_text() or list(reader.tails["meltano"])[-10:]
        raise MeltanoRunError(
            f"`meltano run {extractor} {loader}` failed (exit {result.returncode}):\n  "
            + "\n  ".join(result.error_lines),
            result,
        )
    return result
