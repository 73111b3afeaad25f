"""The production topology on loopback: PostgreSQL-backed instance, separate code servers, webserver,
read-only webserver and daemon, each its own process, exercised through the webserver's GraphQL API.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml
from production_support import (
    BIN,
    PLACEHOLDER_SECRETS,
    PLACEHOLDER_SETTINGS,
    ProcessGroup,
    base_env,
    free_port,
    graphql,
    instance_home,
    port_open,
    requires_postgres,
    throwaway_postgres_database,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres, requires_postgres]

HERE = Path(__file__).resolve().parent
PLATFORM_LOCATION = "platform_assets"
PROBE_LOCATION = "topology_probe"
STARTUP_SECONDS = 300  # code servers import dbt and Dagster; the machine may be busy
RUN_SECONDS = 180


@dataclass
class Topology:
    web_url: str
    read_only_url: str
    pg_settings: dict[str, str]
    processes: ProcessGroup

    def query(self, text: str, variables: dict[str, Any] | None = None, read_only: bool = False) -> dict:
        return graphql(self.read_only_url if read_only else self.web_url, text, variables)

    def runs_in_postgres(self) -> dict[str, str]:
        """run_id -> status, read straight from the Postgres run storage."""
        connection = psycopg2.connect(
            host=self.pg_settings["DAGSTER_PG_HOST"],
            port=int(self.pg_settings["DAGSTER_PG_PORT"]),
            user=self.pg_settings["DAGSTER_PG_USER"],
            password=self.pg_settings["DAGSTER_PG_PASSWORD"],
            dbname=self.pg_settings["DAGSTER_PG_DB"],
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT run_id, status FROM runs")
                return dict(cursor.fetchall())
        finally:
            connection.close()


def write_workspace(path: Path, ports: dict[str, int]) -> Path:
    servers = [
        {"grpc_server": {"host": "127.0.0.1", "port": port, "location_name": name}}
        for name, port in ports.items()
    ]
    path.write_text(yaml.safe_dump({"load_from": servers}))
    return path


def start_code_servers(group: ProcessGroup, env: dict[str, str], prod_build: Path) -> dict[str, int]:
    ports = {PLATFORM_LOCATION: free_port(), PROBE_LOCATION: free_port()}
    group.start(
        "grpc_platform",
        [BIN / "dagster", "api", "grpc", "-m", "platform_assets.definitions", "-h", "127.0.0.1",
         "-p", ports[PLATFORM_LOCATION], "--location-name", PLATFORM_LOCATION, "-d", prod_build],
        env, cwd=prod_build,
    )  # fmt: skip
    group.start(
        "grpc_probe",
        [BIN / "dagster", "api", "grpc", "-f", HERE / "topology_location.py", "-h", "127.0.0.1",
         "-p", ports[PROBE_LOCATION], "--location-name", PROBE_LOCATION, "-d", HERE],
        env, cwd=HERE,
    )  # fmt: skip

    def serving() -> bool:
        group.assert_running()
        return all(port_open(port) for port in ports.values())

    wait_until(serving, STARTUP_SECONDS, "both gRPC code servers serving")
    return ports


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory, prod_build: Path) -> Iterator[Topology]:
    root = tmp_path_factory.mktemp("topology")
    group = ProcessGroup(root)
    with throwaway_postgres_database() as pg_settings:
        try:
            home = instance_home(root / "dagster_home", "prod")
            env = base_env(
                DAGSTER_HOME=str(home),
                PLATFORM_ENV="prod",
                PLATFORM_LOCAL_DIR=str(root / "local"),
                **pg_settings,
                **PLACEHOLDER_SETTINGS,
            )
            # Create the storage schema once, as a deployment's migration step does: processes starting
            # together on an empty database race on its DDL ("type instigators already exists").
            subprocess.run([BIN / "dagster", "instance", "migrate"], env=env, cwd=root, check=True)
            workspace = write_workspace(root / "workspace.yaml", start_code_servers(group, env, prod_build))
            web, read_only = free_port(), free_port()
            webserver = [BIN / "dagster-webserver", "-w", workspace, "-h", "127.0.0.1"]
            group.start("webserver", [*webserver, "-p", web], env, cwd=root)
            group.start("webserver_read_only", [*webserver, "-p", read_only, "--read-only"], env, cwd=root)
            group.start("daemon", [BIN / "dagster-daemon", "run", "-w", workspace], env, cwd=root)
            topology = Topology(
                f"http://127.0.0.1:{web}/graphql", f"http://127.0.0.1:{read_only}/graphql", pg_settings, group
            )

            def answering() -> bool:
                group.assert_running()
                return all(port_open(port) for port in (web, read_only))

            wait_until(answering, STARTUP_SECONDS, "both webservers answering")
            yield topology
        finally:
            group.stop()


WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation { repositories { name assetNodes { id } } }
        }
      }
    }
  }
}
"""

LAUNCH_MUTATION = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { runId status } ... on PythonError { message } }
}
"""

PROBE_LAUNCH = {
    "executionParams": {
        "selector": {
            "repositoryLocationName": PROBE_LOCATION,
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": ["topology_probe"]}],
        },
        "runConfigData": {},
    }
}


def loaded_locations(topology: Topology) -> dict[str, dict]:
    entries = topology.query(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
    return {entry["name"]: entry for entry in entries}


def wait_for_loaded(topology: Topology) -> dict[str, dict]:
    def loaded() -> dict[str, dict] | None:
        topology.processes.assert_running()
        entries = loaded_locations(topology)
        return entries if all(e["loadStatus"] == "LOADED" for e in entries.values()) else None

    return wait_until(loaded, STARTUP_SECONDS, "both code locations loaded in the webserver")


def test_prod_instance_serves_the_platform_code_location_from_its_own_code_server(
    topology: Topology,
) -> None:
    entries = wait_for_loaded(topology)
    assert set(entries) == {PLATFORM_LOCATION, PROBE_LOCATION}
    platform = entries[PLATFORM_LOCATION]["locationOrLoadError"]
    assert platform["__typename"] == "RepositoryLocation", platform.get("message")
    asset_count = sum(len(repo["assetNodes"]) for repo in platform["repositories"])
    assert asset_count > 10, f"the prod platform location has only {asset_count} assets"


def test_materialization_launched_through_graphql_succeeds_in_postgres_run_storage(
    topology: Topology,
) -> None:
    wait_for_loaded(topology)
    launched = topology.query(LAUNCH_MUTATION, PROBE_LAUNCH)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    def finished() -> str | None:
        topology.processes.assert_running()
        status = topology.query(RUN_QUERY, {"runId": run_id})["runOrError"]["status"]
        return status if status in {"SUCCESS", "FAILURE", "CANCELED"} else None

    status = wait_until(finished, RUN_SECONDS, f"run {run_id} finishing (queued -> daemon -> code server)")
    assert status == "SUCCESS", topology.processes.log_tail("grpc_probe")
    assert topology.runs_in_postgres()[run_id] == "SUCCESS"


def test_read_only_webserver_refuses_to_launch_runs(topology: Topology) -> None:
    wait_for_loaded(topology)
    runs_before = topology.runs_in_postgres()
    refused = topology.query(LAUNCH_MUTATION, PROBE_LAUNCH, read_only=True)["launchRun"]
    assert refused["__typename"] == "UnauthorizedError", refused
    assert topology.runs_in_postgres() == runs_before
    # Reading still works for viewers.
    viewer_entries = topology.query(WORKSPACE_QUERY, read_only=True)["workspaceOrError"]["locationEntries"]
    assert {entry["name"] for entry in viewer_entries} == {PLATFORM_LOCATION, PROBE_LOCATION}


UI_SURFACE_QUERY = """
query {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        allTopLevelResourceDetails {
          name
          description
          configuredValues { key value type }
          configFields { name defaultValueAsJson }
        }
        jobs { name description tags { key value } }
        schedules { name description }
        sensors { name description }
        assetNodes {
          assetKey { path }
          description
          tags { key value }
          owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
          metadataEntries {
            label
            description
            ... on TextMetadataEntry { text }
            ... on UrlMetadataEntry { url }
            ... on PathMetadataEntry { path }
            ... on JsonMetadataEntry { jsonString }
            ... on MarkdownMetadataEntry { md_str: mdStr }
            ... on PythonArtifactMetadataEntry { module name }
          }
        }
      }
    }
  }
}
"""


def test_secret_values_never_reach_what_the_ui_shows(topology: Topology) -> None:
    wait_for_loaded(topology)
    surface = topology.query(UI_SURFACE_QUERY)
    shown = json.dumps(surface)
    leaked = [name for name, value in PLACEHOLDER_SECRETS.items() if value in shown]
    assert not leaked, f"the UI shows the values of {leaked}"

    # The search above looked where secrets would be: the warehouse resource's configuration, which
    # names the environment variable instead of holding its value.
    repositories = {repo["location"]["name"]: repo for repo in surface["repositoriesOrError"]["nodes"]}
    resources = {r["name"]: r for r in repositories[PLATFORM_LOCATION]["allTopLevelResourceDetails"]}
    warehouse_values = {v["key"]: v for v in resources["warehouse"]["configuredValues"]}
    assert warehouse_values["password"] == {
        "key": "password",
        "value": "SNOWFLAKE_PASSWORD",
        "type": "ENV_VAR",
    }
