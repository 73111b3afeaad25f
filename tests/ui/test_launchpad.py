"""The Meltano state job's launchpad: a user types its config, the launchpad accepts it and the run works."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from local_stack.browser import dagster_ui

pytestmark = pytest.mark.browser

JOB = "meltano_state"


def job_op_name(ui) -> str:
    """The job's single op, whose name the launchpad config is keyed by."""
    data = dagster_ui.graphql(
        ui.platform.url,
        """query($job: String!, $location: String!) { pipelineOrError(params: {pipelineName: $job,
            repositoryName: "__repository__", repositoryLocationName: $location}) {
            __typename ... on Pipeline { solids { name } } } }""",
        {"job": JOB, "location": ui.platform.location},
    )["pipelineOrError"]
    assert data["__typename"] == "Pipeline", f"job {JOB} is not in code location {ui.platform.location}"
    solids = data["solids"]
    assert len(solids) == 1, f"job {JOB} has ops {solids}; the launchpad config below expects one"
    return solids[0]["name"]


def launchpad_config(op: str, **config: str) -> str:
    lines = [f"      {key}: {value}" for key, value in config.items()]
    return "\n".join(["ops:", f"  {op}:", "    config:", *lines]) + "\n"


def test_meltano_state_launchpad_accepts_list_config_and_run_lists_state(ui) -> None:
    op = job_op_name(ui)
    ui.open_launchpad(JOB)
    ui.type_launchpad_config(launchpad_config(op, action="list", source="landing"))
    ui.page.get_by_text("No errors", exact=True).wait_for()
    launch = ui.page.get_by_role("button", name=re.compile("Launch Run"))
    expect(launch).to_be_enabled()
    ui.settle()
    ui.screenshot("launchpad_meltano_state")
    launch.click()
    ui.page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = ui.page.url.rsplit("/runs/", 1)[1].split("?")[0].strip("/")
    status = ui.wait_for_run_page_status(run_id)
    assert status == "Success", (
        f"meltano_state run {run_id} ended {status}:\n{ui.run_failure_summary(run_id)}"
    )
    ui.page.get_by_text(re.compile(r"state id\(s\)")).first.wait_for()


def test_meltano_state_launchpad_rejects_an_unknown_action(ui) -> None:
    op = job_op_name(ui)
    ui.open_launchpad(JOB)
    ui.type_launchpad_config(launchpad_config(op, action="wipe", source="landing"))
    error = ui.page.get_by_text(re.compile(r"config:action not in enum type .* got wipe"))
    error.first.wait_for()
    launch = ui.page.get_by_role("button", name=re.compile("Launch Run"))
    expect(launch).to_be_disabled()
