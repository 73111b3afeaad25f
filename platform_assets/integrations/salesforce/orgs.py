"""Salesforce orgs, declared in YAML: where each org logs in, how, with which credentials, and its budget.

    # defs/activation/salesforce/orgs.yaml
    default: sales                      # the org of every sync and source that names none
    orgs:
      sales:
        auth: auto                      # client_credentials | jwt_bearer | auto (JWT where its user and
                                        # key variables are set), or one per mode
        credentials:                    # environment variable NAMES, never values
          login_url: SALESFORCE_LOGIN_URL
          client_id: SALESFORCE_CLIENT_ID
          client_secret: SALESFORCE_CLIENT_SECRET
          username: SALESFORCE_USERNAME
          private_key: SALESFORCE_PRIVATE_KEY
        daily_api_budget: 50000         # optional: no sync starts once the org used this many today
        sandbox_port: 8791              # local mode: the org's sandbox on loopback

Load (`load_orgs`) checks names and shapes and fails naming the file and key; it never reads a variable's
value. Values are read when a run starts (`SalesforceOrg.connection`), which names the file, the key and the
variable that is missing. Locally every org is a sandbox on loopback (`sandbox_port`, overridable by
`sandbox_port_env`, or the whole URL by the `login_url` variable) with the sandbox's constant client.

Without an orgs file, the platform has one org, `default`, read from the SALESFORCE_* variables as before.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pydantic
import yaml

from platform_assets import environment
from platform_assets.environment import PlatformEnvironment
from platform_assets.integrations.salesforce.resource import SalesforceResource

DEFAULT_ORGS_FILE = environment.PROJECT_ROOT / "platform_assets/defs/activation/salesforce/orgs.yaml"
AuthFlow = Literal["client_credentials", "jwt_bearer", "auto"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_VARIABLE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
DOCS_HINT = "See docs/salesforce.md, 'Orgs'."


class OrgConfigError(ValueError):
    """The orgs file, or a reference to an org, is wrong; the message names the file and key."""


class OrgCredentialsError(RuntimeError):
    """An org's credential variable is not set where a run needs it; names the file, key and variable."""


class CredentialVariables(pydantic.BaseModel):
    """The NAMES of the environment variables holding each credential (values are never declared)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    login_url: str
    client_id: str
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None


class OrgDecl(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    auth: AuthFlow | dict[Literal["local", "ci", "prod", "default"], AuthFlow] = "auto"
    credentials: CredentialVariables
    api_version: str = "v62.0"
    daily_api_budget: int | None = pydantic.Field(default=None, ge=1)
    pool: str | None = None
    sandbox_port: int = pydantic.Field(default=environment.DEFAULT_SALESFORCE_SANDBOX_PORT, ge=0, le=65535)
    sandbox_port_env: str | None = None


class OrgsFile(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    default: str
    orgs: dict[str, OrgDecl]


@dataclass(frozen=True)
class SalesforceOrg:
    name: str
    decl: OrgDecl
    is_default: bool
    source_file: str

    @property
    def resource_key(self) -> str:
        """The Dagster resource of this org: `salesforce` for the default org, `salesforce_<name>` else."""
        return "salesforce" if self.is_default else f"salesforce_{self.name}"

    @property
    def pool(self) -> str:
        """The Dagster pool bounding this org's concurrent API work where the warehouse is not the limit."""
        return self.decl.pool or ("salesforce_api" if self.is_default else f"salesforce_api_{self.name}")

    def state_key(self, sync_name: str) -> str:
        """The key of a sync's state rows: the default org keeps the bare sync name (state written before
        orgs existed stays valid); another org's state is `<org>/<sync>`, never mistaken for the default's."""
        return sync_name if self.is_default else f"{self.name}/{sync_name}"

    def auth_flow(self, env: PlatformEnvironment) -> str:
        auth = self.decl.auth
        if isinstance(auth, str):
            return auth
        return auth.get(env.mode.value, auth.get("default", "auto"))

    def _key(self, field: str) -> str:
        return f"orgs.{self.name}.credentials.{field}"

    def required_variables(self, env: PlatformEnvironment) -> list[tuple[str, str]]:
        """(key in the orgs file, variable name) of every credential a run needs here (none locally)."""
        if env.is_local:
            return []
        creds = self.decl.credentials
        flow = self.auth_flow(env)
        if flow == "auto":  # JWT bearer where its user and key are set, else client credentials
            jwt = all(name and os.environ.get(name) for name in (creds.username, creds.private_key))
            flow = "jwt_bearer" if jwt else "client_credentials"
        fields = ["login_url", "client_id"]
        fields += ["username", "private_key"] if flow == "jwt_bearer" else ["client_secret"]
        return [(self._key(field), getattr(creds, field) or "") for field in fields]

    @property
    def local_sandbox_port(self) -> int:
        """The port of the org's local sandbox: `sandbox_port_env`'s value where set, else `sandbox_port`."""
        return int(os.environ.get(self.decl.sandbox_port_env or "") or self.decl.sandbox_port)

    def local_login_url(self) -> str:
        """The org locally: the `login_url` variable where set, else its sandbox on loopback."""
        override = os.environ.get(self.decl.credentials.login_url)
        return override or f"http://127.0.0.1:{self.local_sandbox_port}"

    def connection(self, env: PlatformEnvironment | None = None) -> dict[str, str]:
        """The org's connection settings now (login_url, client_id, client_secret or username and
        private_key); raises OrgCredentialsError naming every variable that is missing."""
        env = env or environment.current()
        if env.is_local:
            return {
                "login_url": self.local_login_url(),
                "client_id": environment.SANDBOX_SALESFORCE_CLIENT_ID,
                "client_secret": environment.SANDBOX_SALESFORCE_CLIENT_SECRET,
                "api_version": self.decl.api_version,
            }
        missing = []
        values = {"api_version": self.decl.api_version}
        for key, variable in self.required_variables(env):
            field = key.rsplit(".", 1)[1]
            if not variable:
                missing.append(f"{key} names no variable, and auth flow {self.auth_flow(env)} needs {field}")
            elif not os.environ.get(variable):
                missing.append(f"{key}: the environment variable {variable} is not set")
            else:
                values[field] = os.environ[variable]
        if missing:
            raise OrgCredentialsError(
                f"Salesforce org {self.name!r} ({self.source_file}) cannot connect in "
                f"PLATFORM_ENV={env.mode}:\n  "
                + "\n  ".join(missing)
                + f"\nSet the variable(s), or fix the org's credentials in {self.source_file}. {DOCS_HINT}"
            )
        return values

    def resource(self, env: PlatformEnvironment | None = None) -> SalesforceResource:
        """The org's resource. ci/prod: each credential through dg.EnvVar, resolved when a run uses it.
        A variable unset at load is left empty rather than failing the resource: a run first calls
        `connection`, which names it with its key in the orgs file."""
        env = env or environment.current()
        if env.is_local:
            settings: dict[str, Any] = dict(self.connection(env))
        else:
            settings = {"api_version": self.decl.api_version, "login_url": "", "client_id": ""}
            for key, variable in self.required_variables(env):
                if variable and os.environ.get(variable):
                    settings[key.rsplit(".", 1)[1]] = dg.EnvVar(variable)
        return SalesforceResource(**settings)


@dataclass(frozen=True)
class OrgRegistry:
    file: str
    default: str
    orgs: Mapping[str, SalesforceOrg]

    def get(self, name: str | None, where: str = "", key: str = "org") -> SalesforceOrg:
        """The org `name` (None: the default org); an unknown name fails naming `where` and `key`."""
        if name is None:
            return self.orgs[self.default]
        if name not in self.orgs:
            raise OrgConfigError(
                f"{where}: key '{key}': org {name!r} is not declared in {self.file} "
                f"(orgs there: {', '.join(self.orgs)}). Fix: name one of them, or declare it there."
            )
        return self.orgs[name]

    def __iter__(self) -> Iterator[SalesforceOrg]:
        """The orgs, default first."""
        yield self.orgs[self.default]
        yield from (org for name, org in self.orgs.items() if name != self.default)


# Today's single org, where no orgs file exists: the SALESFORCE_* variables, JWT bearer where a key is set.
_BUILT_IN = {
    "default": "default",
    "orgs": {
        "default": {
            "credentials": {
                "login_url": "SALESFORCE_LOGIN_URL",
                "client_id": "SALESFORCE_CLIENT_ID",
                "client_secret": "SALESFORCE_CLIENT_SECRET",
                "username": "SALESFORCE_USERNAME",
                "private_key": "SALESFORCE_PRIVATE_KEY",
            },
            "sandbox_port_env": "SALESFORCE_SANDBOX_PORT",
        }
    },
}


def _format(path: Path, error: pydantic.ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<document>"
        extra = item["type"] == "extra_forbidden"
        message = "is not an org setting (check the spelling)" if extra else item["msg"]
        lines.append(f"{path}: key '{key}': {message}")
    return "\n".join(lines) + f"\n{DOCS_HINT}"


def load_orgs(path: Path | None = None) -> OrgRegistry:
    """The orgs of `path` (default: defs/activation/salesforce/orgs.yaml); without it, the built-in org."""
    path = path or DEFAULT_ORGS_FILE
    if path.exists():
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise OrgConfigError(f"{path}: is not valid YAML: {error}") from None
        where = str(path)
    else:
        document, where = _BUILT_IN, "the built-in default org (no orgs file)"
    try:
        parsed = OrgsFile.model_validate(document)
    except pydantic.ValidationError as error:
        raise OrgConfigError(_format(path, error)) from None
    problems = []
    for name, decl in parsed.orgs.items():
        if not _NAME.match(name):
            problems.append(f"{where}: key 'orgs.{name}': org names are lowercase snake_case (at most 31)")
        for field, variable in decl.credentials.model_dump().items():
            if variable is not None and not _VARIABLE.match(variable):
                problems.append(
                    f"{where}: key 'orgs.{name}.credentials.{field}': {variable!r} is not an environment "
                    "variable NAME (upper-case, e.g. SALESFORCE_CLIENT_SECRET); never put a value here"
                )
        if decl.sandbox_port_env and not _VARIABLE.match(decl.sandbox_port_env):
            problems.append(f"{where}: key 'orgs.{name}.sandbox_port_env': not an environment variable name")
    if parsed.default not in parsed.orgs:
        problems.append(
            f"{where}: key 'default': org {parsed.default!r} is not declared under orgs "
            f"({', '.join(parsed.orgs) or 'none'})"
        )
    ports = [decl.sandbox_port for decl in parsed.orgs.values() if decl.sandbox_port]
    if len(ports) != len(set(ports)):
        problems.append(f"{where}: key 'orgs.*.sandbox_port': two orgs share a local sandbox port")
    if problems:
        raise OrgConfigError("\n".join(problems) + f"\n{DOCS_HINT}")
    orgs = {
        name: SalesforceOrg(name, decl, name == parsed.default, where) for name, decl in parsed.orgs.items()
    }
    return OrgRegistry(file=where, default=parsed.default, orgs=orgs)


def local_sandboxes(path: Path | None = None) -> list[dict[str, Any]]:
    """What tasks.py starts locally: one sandbox per org (name, port, whether it is the default org)."""
    return [
        {
            "org": org.name,
            "default": org.is_default,
            "port": org.local_sandbox_port,
            "port_env": org.decl.sandbox_port_env or "",
        }
        for org in load_orgs(path)
    ]


if __name__ == "__main__":  # tasks.py asks for the local sandboxes (it runs without PyYAML)
    import json

    print(json.dumps(local_sandboxes()))
