"""Regenerate docs/screenshots/*.png by running the browser tests, which take them as they go.

    python -m local_stack.browser.screenshots [extra pytest arguments]

Installs Debian's Chromium first when it is missing, then runs `pytest tests/ui -m browser` with
PLATFORM_UI_SCREENSHOTS pointing at docs/screenshots. A screenshot is only published from a passing step
of a test, so a failing run leaves the failing view out of the docs (it stays in the kept scratch folder).
"""

from __future__ import annotations

import os
import subprocess
import sys

from local_stack.browser.chromium import ChromiumUnavailableError, ensure_chromium
from platform_assets.environment import PROJECT_ROOT

SCREENSHOTS_DIR = PROJECT_ROOT / "docs" / "screenshots"


def main(argv: list[str] | None = None) -> int:
    try:
        ensure_chromium()
    except ChromiumUnavailableError as error:
        print(f"screenshots: {error}", file=sys.stderr)
        return 2
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PLATFORM_UI_SCREENSHOTS": str(SCREENSHOTS_DIR)}
    command = [sys.executable, "-m", "pytest", "tests/ui", "-m", "browser", "-p", "no:cacheprovider",
               *(sys.argv[1:] if argv is None else argv)]  # fmt: skip
    completed = subprocess.run(command, cwd=PROJECT_ROOT, env=env)
    written = sorted(path.name for path in SCREENSHOTS_DIR.glob("*.png"))
    print(f"screenshots in {SCREENSHOTS_DIR}: {', '.join(written) or 'none'}")
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
