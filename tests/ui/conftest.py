"""Browser tests of the Dagster UI: one throwaway platform and one Chromium per session.

The session starts `dagster dev` on a temp instance (temp PLATFORM_LOCAL_DIR and DAGSTER_HOME, free
loopback ports), the sample company and both sandboxes, then drives Debian's Chromium through Playwright.
Screenshots go to the session's scratch folder, and also to $PLATFORM_UI_SCREENSHOTS when it is set
(`python -m local_stack.browser.screenshots` sets it to docs/screenshots).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from local_stack.browser import dagster_ui
from local_stack.browser.chromium import LAUNCH_ARGS, ChromiumUnavailableError, ensure_chromium

SCREENSHOTS_ENV = "PLATFORM_UI_SCREENSHOTS"
VIEWPORT = {"width": 1440, "height": 900}
UI_TIMEOUT_MS = 45_000  # one UI interaction (page load, button, toast); the machine is shared
RUN_TIMEOUT_S = 420  # one run launched from the UI, queue wait included
TERMINAL_RUN_STATUSES = ("Success", "Failure", "Canceled")


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    try:
        return ensure_chromium()
    except ChromiumUnavailableError as error:
        pytest.skip(f"Chromium cannot be installed here, so the browser tests cannot run: {error}")


@pytest.fixture(scope="session")
def scratch_dir(request) -> Iterator[Path]:
    """The session's temp folder (instance, data, logs, screenshots); kept when a test failed."""
    path = Path(tempfile.mkdtemp(prefix="platform-ui-"))
    failed_before = request.session.testsfailed
    yield path
    if request.session.testsfailed > failed_before or os.environ.get("PLATFORM_UI_KEEP_SCRATCH") == "1":
        print(f"\nbrowser tests: logs and screenshots kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def platform_ui(chromium_path: Path, scratch_dir: Path) -> Iterator[dagster_ui.RunningUI]:
    """`dagster dev` (automation paused), the sample company and both sandboxes, for the whole session."""
    with dagster_ui.running_platform(scratch_dir) as running:
        yield running


@pytest.fixture(scope="session")
def browser(chromium_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(chromium_path), headless=True, args=list(LAUNCH_ARGS)
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def new_ui(browser, platform_ui: dagster_ui.RunningUI, scratch_dir: Path):
    """Open a fresh browser context on the platform's UI: `with new_ui() as ui: ...`."""

    @contextlib.contextmanager
    def open_ui() -> Iterator[DagsterUI]:
        context = browser.new_context(viewport=VIEWPORT, base_url=platform_ui.url)
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield DagsterUI(context.new_page(), platform_ui, scratch_dir / "screenshots")
        finally:
            context.close()

    return open_ui


# The finance domain with everything upstream of it (landing and Salesforce ingestion, staging), as a
# user selects it on the lineage page: one run, four steps.
FINANCE_SELECTION = "+group:finance"


@dataclass(frozen=True)
class LaunchedRun:
    run_id: str
    status: str
    failure_summary: str

    def require_success(self) -> None:
        if self.status != "Success":
            pytest.fail(f"run {self.run_id} ended {self.status}, so there is nothing to look at")


@pytest.fixture(scope="session")
def finance_run(new_ui) -> LaunchedRun:
    """Once per session, a user materializes `+group:finance` from the lineage page and waits for the end.

    Tests that look at materialized assets share this one run (the session's most expensive step).
    """
    with new_ui() as ui:
        ui.open("/asset-groups")
        ui.filter_assets(FINANCE_SELECTION)
        ui.graph_group("finance").wait_for()
        assert not ui.graph_group("activation").is_visible(), "the filter did not narrow the graph"
        ui.materialize_button().first.click()
        run_id = ui.launched_run_id()
        status = ui.wait_for_run_page_status(run_id)
        ui.settle()
        ui.screenshot("run", publish=status == "Success")
        summary = "" if status == "Success" else ui.run_failure_summary(run_id)
        return LaunchedRun(run_id, status, summary)


@pytest.fixture
def ui(new_ui, request) -> Iterator[DagsterUI]:
    with new_ui() as driver:
        yield driver
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            driver.screenshot(f"FAILED-{request.node.name}", publish=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


class DagsterUI:
    """What a user does in the Dagster UI, in a few verbs; locators follow what the user reads."""

    def __init__(self, page, platform: dagster_ui.RunningUI, artifacts: Path) -> None:
        self.page = page
        self.platform = platform
        self.artifacts = artifacts

    # --------------------------------------------------------------------------------- navigation
    def open(self, path: str) -> None:
        self.page.goto(path)
        # The app shell is up once the main navigation is drawn.
        self.page.get_by_role("link", name=re.compile(r"Overview")).first.wait_for()

    def open_group(self, group: str) -> None:
        self.open(f"/locations/{self.platform.location}/asset-groups/{group}")

    def open_asset(self, *key: str) -> None:
        self.open("/assets/" + "/".join(key))

    def open_launchpad(self, job: str) -> None:
        self.open(f"/locations/{self.platform.location}/jobs/{job}/playground")

    # ------------------------------------------------------------------------------------ reading
    def status_value(self, label: str, timeout_ms: float = UI_TIMEOUT_MS) -> str:
        """The value shown under `label` (e.g. 'Row count') in an asset page's Status section."""
        label_span = self.page.locator("span").filter(has_text=re.compile(rf"^{re.escape(label)}$")).first
        label_span.wait_for(timeout=timeout_ms)
        return label_span.locator("xpath=following-sibling::*[1]").inner_text().strip()

    def metadata_table(self) -> dict[str, str]:
        """An asset page's Metadata table as {key: value text}."""
        table = self.page.locator("table").filter(
            has=self.page.locator("thead td", has_text=re.compile("^Key$"))
        )
        table.first.wait_for()
        rows = table.first.locator("tbody tr")
        result = {}
        for index in range(rows.count()):
            cells = rows.nth(index).locator("td")
            result[cells.first.inner_text().strip()] = cells.last.inner_text().strip()
        return result

    def graph_group(self, group: str):
        """A group's node in the lineage graph (its label may be truncated; the tooltip is not)."""
        return self.page.locator(f'svg foreignObject [data-tooltip="{group}"]').first

    def definition_section(self):
        """The asset page's right-hand Definition column (group, owners, kinds, tags)."""
        heading = self.page.get_by_text("Definition", exact=True).first
        heading.wait_for()
        return self.page.locator("div").filter(has=heading).filter(has_text="Kinds").last

    def upstream_link(self, *key: str):
        """The link to upstream asset `key` in the asset page's Lineage section."""
        return self.page.locator(f'a[href^="/assets/{"/".join(key)}"]').first

    def poll_with_reloads(self, read: Callable[[], str], until: str, timeout_s: float) -> str:
        """Reload the page until `read()` returns `until` (for values the page does not live-update)."""
        deadline = time.monotonic() + timeout_s
        value = read()
        while value != until and time.monotonic() < deadline:
            time.sleep(3)
            self.page.reload()
            value = read()
        return value

    # ------------------------------------------------------------------------------------ actions
    def filter_assets(self, selection: str) -> None:
        """Type an asset selection into the lineage page's 'Search and filter assets' box."""
        box = self.page.get_by_label("Search and filter assets")
        box.wait_for(state="attached")
        box.focus()
        self.page.keyboard.insert_text(selection)
        self.page.keyboard.press("Enter")

    def type_launchpad_config(self, yaml_text: str) -> None:
        """Replace the launchpad's config with `yaml_text`, as a paste (no auto-indent on new lines)."""
        editor = self.page.locator(".CodeMirror").first
        editor.wait_for()
        editor.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.insert_text(yaml_text)

    def materialize_button(self):
        return self.page.get_by_role("button").filter(has_text=re.compile(r"^Materialize( all| selected)?$"))

    def launched_run_id(self) -> str:
        """The run id from the 'Launched run' toast the UI shows after a launch."""
        toast = self.page.get_by_text(re.compile(r"^Launched run"))
        toast.wait_for()
        href = self.page.get_by_role("link", name="View", exact=True).first.get_attribute("href") or ""
        match = re.search(r"/runs/([0-9a-f-]{36})", href)
        assert match, f"the 'Launched run' toast links to {href!r}, not to a run page"
        return match.group(1)

    def wait_for_run_page_status(self, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> str:
        """Open the run's page and wait until its status tag reads a terminal status; return it."""
        self.open(f"/runs/{run_id}")
        status = self.page.get_by_text(re.compile(rf"^({'|'.join(TERMINAL_RUN_STATUSES)})$")).first
        status.wait_for(timeout=timeout_s * 1000)
        return status.inner_text().strip()

    def run_failure_summary(self, run_id: str) -> str:
        """The failed steps' and the run's error messages (read over GraphQL) for an assertion message."""
        error_fields = "error { message errorChain { error { message } } }"
        data = dagster_ui.graphql(
            self.platform.url,
            f"""query($id: ID!) {{ runOrError(runId: $id) {{ ... on Run {{
                eventConnection(afterCursor: null) {{ events {{ __typename
                  ... on ExecutionStepFailureEvent {{ stepKey {error_fields} }}
                  ... on RunFailureEvent {{ message {error_fields} }} }} }} }} }} }}""",
            {"id": run_id},
        )
        lines = []
        for event in data["runOrError"]["eventConnection"]["events"]:
            if event["__typename"] not in ("ExecutionStepFailureEvent", "RunFailureEvent"):
                continue
            error = event.get("error") or {}
            causes = [link["error"]["message"] for link in error.get("errorChain") or []]
            message = "\n".join(filter(None, [event.get("message"), error.get("message"), *causes]))
            lines.append(f"[{event.get('stepKey') or 'run'}] {message[:3000]}")
        return "\n".join(lines) or "(no failure events)"

    # -------------------------------------------------------------------------------- screenshots
    def settle(self, seconds: float = 2.0) -> None:
        """Let live data and layout animations finish before a screenshot."""
        self.page.wait_for_load_state("networkidle", timeout=UI_TIMEOUT_MS)
        time.sleep(seconds)

    def screenshot(self, name: str, publish: bool = True) -> Path:
        """Save a screenshot to the session's artifacts and, when publishing, to $PLATFORM_UI_SCREENSHOTS."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path))
        published = os.environ.get(SCREENSHOTS_ENV)
        if publish and published:
            Path(published).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(published) / path.name)
        return path
