"""Debian's Chromium for the browser tests: install it from Debian packages, launch it headless.

Playwright's own browser download needs hosts this project cannot reach, so the tests drive the
`chromium` package from Debian instead. Standard library only: `tasks.py` calls `ensure_chromium()`
before `.venv` exists.

    python -m local_stack.browser.chromium     install Chromium when it is missing, print its path
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM_PATH = Path("/usr/bin/chromium")
DEBIAN_PACKAGE = "chromium"
# Headless, no GPU, no sandbox (containers run as root), and nothing that phones home.
LAUNCH_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class ChromiumUnavailableError(RuntimeError):
    """Chromium is not installed and cannot be installed here; the message says why and what to do."""


def ensure_chromium(install: bool = True) -> Path:
    """Return Chromium's path, installing Debian's `chromium` package first when it is missing."""
    if _runs(CHROMIUM_PATH):
        return CHROMIUM_PATH
    if not install:
        raise ChromiumUnavailableError(
            f"{CHROMIUM_PATH} is missing; run `apt-get install -y {DEBIAN_PACKAGE}`."
        )
    _apt_install()
    if not _runs(CHROMIUM_PATH):
        raise ChromiumUnavailableError(
            f"`apt-get install {DEBIAN_PACKAGE}` finished but {CHROMIUM_PATH} does not run; "
            f"check `{CHROMIUM_PATH} --version`."
        )
    return CHROMIUM_PATH


def _runs(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        completed = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0 and "Chromium" in completed.stdout


def _apt_install() -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        raise ChromiumUnavailableError(
            f"{CHROMIUM_PATH} is missing and this system has no apt-get; install Chromium with the "
            "system's package manager at that path."
        )
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            raise ChromiumUnavailableError(
                f"{CHROMIUM_PATH} is missing and installing it needs root: run "
                f"`sudo apt-get install -y {DEBIAN_PACKAGE}`."
            )
        prefix = [sudo, "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update", "-q"], [apt, "install", "-y", "-q", DEBIAN_PACKAGE]):
        completed = subprocess.run([*prefix, *command], env=env, capture_output=True, text=True, timeout=900)
        if completed.returncode != 0:
            tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-5:])
            raise ChromiumUnavailableError(
                f"`{' '.join(command)}` failed ({completed.returncode}), so Chromium cannot be "
                f"installed:\n{tail}"
            )


if __name__ == "__main__":
    try:
        print(ensure_chromium())
    except ChromiumUnavailableError as error:
        sys.exit(str(error))
