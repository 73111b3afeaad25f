"""The scale-out artifacts: the code location image recipe and the Helm values (no Docker or Kubernetes
needed: these check what can be checked without them)."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest
import yaml
from production_support import DEPLOY_DIR, REPO_ROOT

from platform_assets import environment

DOCKERFILE = DEPLOY_DIR / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def copied_sources() -> list[str]:
    sources = []
    for instruction, arguments in dockerfile_instructions():
        if instruction == "COPY" and not arguments.startswith("--from"):
            *paths, _destination = arguments.split()
            sources.extend(paths)
    return sources


def dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerfile_copies_only_files_that_exist_in_the_repository() -> None:
    sources = copied_sources()
    assert {"pyproject.toml", "uv.lock", "platform_assets", "dbt_project", "meltano"} <= set(sources)
    missing = [source for source in sources if not (REPO_ROOT / source).exists()]
    assert not missing, f"deploy/Dockerfile copies {missing}, which the repository does not have"


def test_dockerignore_keeps_local_state_out_but_not_what_the_image_copies() -> None:
    patterns = dockerignore_patterns()
    for private in (".venv", ".local", ".env", "dbt_project/target", "meltano/.meltano"):
        assert private in patterns, f".dockerignore must exclude {private}"
    ignored = [src for src in copied_sources() if any(fnmatch.fnmatch(src, p) for p in patterns)]
    assert not ignored, f".dockerignore excludes {ignored}, which deploy/Dockerfile copies"


def test_dockerfile_builds_from_the_lock_prepares_the_manifest_and_serves_grpc() -> None:
    instructions = dockerfile_instructions()
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert "uv sync --frozen --no-dev" in runs
    tasks_uv = re.search(r'UV_VERSION = "([^"]+)"', (REPO_ROOT / "tasks.py").read_text())
    assert tasks_uv and f"uv=={tasks_uv.group(1)}" in runs, "the image and tasks.py must use the same uv"
    # The manifest is prepared at build time for Snowflake by the dbt component's own command
    # (`dbt parse` under the prod target), so definitions load never parses dbt.
    assert "PLATFORM_ENV=prod" in " ".join(args for instr, args in instructions if instr == "ENV")
    assert "python -m platform_assets.components.dbt_domains" in runs
    assert "__main__" in (REPO_ROOT / "platform_assets" / "components" / "dbt_domains.py").read_text()
    assert "meltano --environment prod install" in runs
    command = json.loads(next(args for instr, args in instructions if instr == "CMD"))
    assert command[:3] == ["dagster", "api", "grpc"]
    assert command[command.index("--module-name") + 1] == "platform_assets.definitions"
    assert not any(instr == "ENTRYPOINT" for instr, _ in instructions), "K8s run pods pass their own args"
    # Every variable the build sets as a placeholder is only there for `dbt parse`, never an ENV.
    env_lines = " ".join(args for instr, args in instructions if instr == "ENV")
    for secret in ("SNOWFLAKE_PASSWORD", "SALESFORCE_CLIENT_SECRET", "HIGHTOUCH_API_KEY"):
        assert secret not in env_lines, f"{secret} must not be baked into the image"


def test_dockerfile_records_the_git_revision_that_workflow_runs_tag() -> None:
    """The image has no .git, so workflow versions would say `unknown` without the build argument."""
    instructions = dockerfile_instructions()
    assert ("ARG", "GIT_REVISION=unknown") in instructions
    env_lines = " ".join(args for instr, args in instructions if instr == "ENV")
    assert "PLATFORM_GIT_REVISION=${GIT_REVISION}" in env_lines
    assert "--build-arg GIT_REVISION=" in (REPO_ROOT / "docs" / "production.md").read_text()


@pytest.fixture(scope="module")
def helm_values() -> dict:
    return yaml.safe_load((DEPLOY_DIR / "helm" / "values.yaml").read_text())


@pytest.fixture(scope="module")
def prod_instance() -> dict:
    return yaml.safe_load((DEPLOY_DIR / "prod" / "dagster.yaml").read_text())


def test_helm_values_run_the_code_location_image_with_settings_from_secrets(helm_values: dict) -> None:
    assert helm_values["postgresql"]["enabled"] is False, "Dagster's PostgreSQL is external"
    assert helm_values["postgresql"]["postgresqlHost"]
    assert helm_values["runLauncher"]["type"] == "K8sRunLauncher"
    user_deployments = helm_values["dagster-user-deployments"]
    assert user_deployments["enabled"] is True
    (deployment,) = user_deployments["deployments"]
    assert deployment["image"]["repository"] and deployment["image"]["tag"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == "platform_assets.definitions"
    image_cmd = json.loads(next(a for i, a in dockerfile_instructions() if i == "CMD"))
    assert str(deployment["port"]) == image_cmd[image_cmd.index("--port") + 1]
    assert {"name": "PLATFORM_ENV", "value": "prod"} in deployment["env"]
    code_secrets = {secret["name"] for secret in deployment["envSecrets"]}
    run_secrets = {s["name"] for s in helm_values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}
    assert code_secrets == run_secrets, "runs need the same secrets as the code server"
    # One Secret per part of the platform that REQUIRED_SETTINGS names.
    assert {"platform-warehouse", "platform-salesforce", "platform-hightouch"} <= code_secrets
    assert len(environment.REQUIRED_SETTINGS) == 3
    # Secret values never appear in the values file itself.
    plain_env = json.dumps(deployment["env"])
    for variables in environment.REQUIRED_SETTINGS.values():
        assert not any(variable in plain_env for variable in variables)
    assert helm_values["dagsterWebserver"]["enableReadOnly"] is True


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_helm_instance_settings_match_the_prod_dagster_yaml(helm_values: dict, prod_instance: dict) -> None:
    daemon = helm_values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert prod_instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert (
        daemon["runCoordinator"]["config"]["queuedRunCoordinator"]["dequeueIntervalSeconds"]
        == prod_instance["run_coordinator"]["config"]["dequeue_interval_seconds"]
    )

    runs, pools = helm_values["concurrency"]["runs"], helm_values["concurrency"]["pools"]
    prod_runs, prod_pools = prod_instance["concurrency"]["runs"], prod_instance["concurrency"]["pools"]
    assert runs["maxConcurrentRuns"] == prod_runs["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == prod_runs["tag_concurrency_limits"]
    # A workflow's runs may run the same Salesforce sync: one at a time per workflow (docs/workflows.md).
    assert {
        "key": "workflow/name",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in prod_runs["tag_concurrency_limits"]
    assert {snake(key): value for key, value in pools.items()} == prod_pools

    retries = {snake(key): value for key, value in daemon["runRetries"].items()}
    assert retries == prod_instance["run_retries"]
    monitoring = {snake(key): value for key, value in daemon["runMonitoring"].items()}
    # Resuming run workers needs a launcher that supports it (K8s does, the VM's default launcher not).
    monitoring.pop("max_resume_run_attempts")
    assert monitoring == prod_instance["run_monitoring"]
    for daemon_kind in ("sensors", "schedules"):
        assert {snake(k): v for k, v in daemon[daemon_kind].items()} == prod_instance[daemon_kind]

    extra = helm_values["additionalInstanceConfig"]
    assert extra["auto_materialize"] == prod_instance["auto_materialize"]
    assert extra["freshness"] == prod_instance["freshness"] == {"enabled": True}
    assert helm_values["telemetry"] == prod_instance["telemetry"]
