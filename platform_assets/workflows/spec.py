"""Workflow documents: one YAML file per workflow (docs/workflows.md#declaring-a-workflow).

A document declares its variables (with defaults), an optional trigger query whose rows become run
variables, optional schedules that override variables, and steps. Steps run in document order, each after
the previous one succeeded, unless it declares `after:` (its predecessors), `when:` (success, failure or
completion of them) and `require:` (all or any of them). Every mistake fails the load naming the file and
the key, with what to fix.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from platform_assets import environment
from platform_assets.workflows import sql as declared_sql

DOCS_HINT = "See docs/workflows.md, 'Declaring a workflow'."
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_URL_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
STEP_KINDS = ("sql", "http", "alert", "assets", "salesforce_sync", "hightouch_sync")
RESERVED_STEP_NAMES = ("variables", "outcome")  # the job's own nodes
TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


class WorkflowConfigError(ValueError):
    """A workflow document cannot be built; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Variable(_Strict):
    default: Any = None
    type: Literal["string", "integer", "number", "boolean"] | None = Field(
        default=None, description="Default: the default's type, else string."
    )
    description: str | None = None

    @property
    def python_type(self) -> type:
        if self.type:
            return TYPES[self.type]
        inferred = {bool: "boolean", int: "integer", float: "number"}.get(type(self.default), "string")
        return TYPES[inferred]


class Trigger(_Strict):
    sql: str = Field(description="The query; `:name` binds a variable's default.")
    database: Literal["warehouse", "app_db"] = Field(
        default="warehouse",
        description="Where the query runs: the warehouse, or the application database "
        "(PLATFORM_APP_DB_URL, read-only; the sensor skips while it is unset).",
    )
    prepare: list[str] = Field(
        default_factory=list,
        description="Idempotent statements run before the query (e.g. `create table if not exists` of the "
        "tables the workflow keeps its state in, which the query reads).",
    )
    each_row: bool = Field(default=False, description="One run per row; else one run, of the first row.")
    into: str | None = Field(
        default=None,
        description="Without each_row: the variable that gets the first column of the first row.",
    )
    key: str | None = Field(default=None, description="Column identifying a row (its runs); default: first.")
    interval_seconds: int = 60


class Schedule(_Strict):
    name: str | None = None
    cron: str
    timezone: str = "UTC"
    variables: dict[str, Any] = Field(default_factory=dict)


class HttpCall(_Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(description="`{name}` inserts a variable, URL-encoded.")
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    headers_env: dict[str, str] = Field(
        default_factory=dict, description="Header -> environment variable holding its value (secrets)."
    )
    timeout_seconds: float = 30.0


class AlertCall(_Strict):
    title: str = Field(description="`{name}` inserts a variable.")
    severity: Literal["error", "warning", "info"] = "error"


class AssetRun(_Strict):
    select: list[str] = Field(min_length=1, description="Asset keys `a/b` to materialize in one run.")
    job: str = Field(default="__ASSET_JOB", description="The asset job that runs them (default: any asset).")
    location: str | None = Field(default=None, description="Code location; needed where there are several.")
    timeout_seconds: float = 3600.0
    poll_seconds: float = 2.0


class SalesforceSyncCall(_Strict):
    sync: str = Field(description="A Salesforce sync document of the workflows' `syncs_dir`/salesforce.")
    where: dict[str, str] = Field(
        default_factory=dict,
        description="Model column -> variable: only the rows whose column holds the variable's value.",
    )
    on_rejected: Literal["fail", "pass"] = Field(
        default="fail", description="Records Salesforce rejected fail the step (default) or only warn."
    )


class HightouchSyncCall(_Strict):
    sync: str = Field(description="A Hightouch sync document of the workflows' `syncs_dir`/hightouch.")


class Step(_Strict):
    name: str
    description: str | None = None
    sql: str | list[str] | None = Field(
        default=None, description="A statement, or a list run in one transaction; `:name` binds a variable."
    )
    http: HttpCall | None = None
    alert: AlertCall | None = None
    assets: AssetRun | None = None
    salesforce_sync: SalesforceSyncCall | None = None
    hightouch_sync: HightouchSyncCall | None = None
    after: list[str] | None = Field(default=None, description="Predecessors; default: the previous step.")
    when: Literal["success", "failure", "completion"] = "success"
    require: Literal["all", "any"] = "all"

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        actions = [name for name in STEP_KINDS if getattr(self, name) is not None]
        if len(actions) != 1:
            raise ValueError(
                f"a step has exactly one of {', '.join(STEP_KINDS)} (found: {', '.join(actions) or 'none'})"
            )
        return self

    @property
    def statements(self) -> list[str]:
        return [self.sql] if isinstance(self.sql, str) else list(self.sql or [])

    @property
    def kind(self) -> str:
        return next(name for name in STEP_KINDS if getattr(self, name) is not None)


class WorkflowDocument(_Strict):
    name: str | None = Field(default=None, description="Default: the file name without .yaml.")
    description: str | None = None
    variables: dict[str, Variable] = Field(default_factory=dict)
    trigger: Trigger | None = None
    schedules: list[Schedule] = Field(default_factory=list)
    steps: list[Step]
    owners: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand_variables(cls, data: Any) -> Any:
        """`variables: {channel: email}` is short for `{channel: {default: email}}`."""
        if isinstance(data, dict) and isinstance(data.get("variables"), dict):
            data = {
                **data,
                "variables": {
                    name: value if isinstance(value, dict) else {"default": value}
                    for name, value in data["variables"].items()
                },
            }
        return data


@dataclass(frozen=True)
class Workflow:
    name: str
    document: WorkflowDocument
    source_file: Path
    version: str
    """The document's content hash: a changed declaration is a new version."""
    git_revision: str

    @property
    def steps(self) -> list[Step]:
        return self.document.steps

    def predecessors(self, index: int) -> list[str]:
        step = self.steps[index]
        if step.after is not None:
            return step.after
        return [self.steps[index - 1].name] if index else []

    def defaults(self) -> dict[str, Any]:
        return {name: variable.default for name, variable in self.document.variables.items()}


def load_workflows(folder: Path) -> list[Workflow]:
    """Every `*.yaml` document in `folder`, checked; names are unique."""
    workflows = [load_workflow(path) for path in sorted(folder.glob("*.y*ml"))]
    seen: dict[str, Path] = {}
    for workflow in workflows:
        if workflow.name in seen:
            raise WorkflowConfigError(
                f"{workflow.source_file}: key 'name': workflow {workflow.name!r} is also declared in "
                f"{seen[workflow.name]}; names are unique. {DOCS_HINT}"
            )
        seen[workflow.name] = workflow.source_file
    return workflows


def load_workflow(path: Path) -> Workflow:
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise WorkflowConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise WorkflowConfigError(
            f"{path}: a workflow document is a mapping with at least `steps`. {DOCS_HINT}"
        )
    try:
        document = WorkflowDocument.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"key '{'.'.join(map(str, e['loc'])) or '(document)'}': {e['msg']}" for e in error.errors()
        )
        raise WorkflowConfigError(f"{path}: {problems}. {DOCS_HINT}") from None
    workflow = Workflow(
        name=document.name or path.stem,
        document=document,
        source_file=path,
        version=hashlib.sha256(raw).hexdigest()[:12],
        git_revision=git_revision(),
    )
    check(workflow)
    return workflow


def check(workflow: Workflow) -> None:
    """The references inside a document: names, predecessors, parameters, trigger columns."""
    document, path = workflow.document, workflow.source_file

    def fail(key: str, problem: str) -> None:
        raise WorkflowConfigError(f"{path}: key '{key}': {problem}. {DOCS_HINT}")

    if not _NAME.match(workflow.name):
        fail("name", f"{workflow.name!r} is not a name (letters, digits, '_')")
    variables = frozenset(document.variables)
    for name in variables:
        if not _NAME.match(name):
            fail(f"variables.{name}", "not a name (letters, digits, '_')")
    if not document.steps:
        fail("steps", "a workflow has at least one step")
    seen: list[str] = []
    for index, step in enumerate(document.steps):
        where = f"steps[{index}]"
        if not _NAME.match(step.name) or step.name in [*seen, *RESERVED_STEP_NAMES]:
            fail(f"{where}.name", f"{step.name!r} is not a name, is not unique or is reserved")
        for predecessor in workflow.predecessors(index):
            if predecessor not in seen:
                fail(
                    f"{where}.after",
                    f"{predecessor!r} is not an earlier step (earlier: {', '.join(seen) or 'none'})",
                )
        if step.when != "success" and step.after is None:
            fail(f"{where}.after", f"a step with `when: {step.when}` names its predecessors")
        seen.append(step.name)
        _check_texts(step, variables, f"{path}: key '{where}", where, fail)
    trigger = document.trigger
    if trigger:
        _check_sql(trigger.sql, variables, f"{path}: key 'trigger.sql'")
        if trigger.database == "app_db":
            if trigger.prepare:
                fail("trigger.prepare", "the application database is only read: keep state in the warehouse")
            if "{schema:" in trigger.sql:
                fail("trigger.sql", "{schema:…} names warehouse schemas; name the application's schema")
        for index, statement in enumerate(trigger.prepare):
            _check_sql(statement, frozenset(), f"{path}: key 'trigger.prepare[{index}]'")
        if not trigger.each_row and trigger.into is not None and trigger.into not in variables:
            fail("trigger.into", f"{trigger.into!r} is not a declared variable")
    for index, schedule in enumerate(document.schedules):
        for name in schedule.variables:
            if name not in variables:
                fail(f"schedules[{index}].variables.{name}", "not a declared variable")


def _check_sql(sql: str, variables: frozenset[str], where: str) -> None:
    try:
        declared_sql.check(sql, variables, where + "'")
    except declared_sql.SqlTemplateError as error:
        raise WorkflowConfigError(f"{error}. {DOCS_HINT}") from None


def _check_texts(step: Step, variables: frozenset[str], located: str, where: str, fail: Any) -> None:
    for index, statement in enumerate(step.statements):
        _check_sql(
            statement, variables, f"{located}.sql" + (f"[{index}]" if isinstance(step.sql, list) else "")
        )
    if step.salesforce_sync:
        for column, variable in step.salesforce_sync.where.items():
            if variable not in variables:
                fail(f"{where}.salesforce_sync.where.{column}", f"{variable!r} is not a declared variable")
    texts = {"http.url": step.http.url} if step.http else {}
    if step.alert:
        texts["alert.title"] = step.alert.title
    for key, text in texts.items():
        unknown = set(_URL_PLACEHOLDER.findall(text)) - variables
        if unknown:
            fail(f"{where}.{key}", f"unknown variable(s) {', '.join(sorted(unknown))}")


@cache
def git_revision() -> str:
    """The repository revision the declarations come from: PLATFORM_GIT_REVISION (set in images), else git."""
    if revision := os.environ.get("PLATFORM_GIT_REVISION"):
        return revision
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=environment.PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"
