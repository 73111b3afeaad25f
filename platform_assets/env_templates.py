"""Settings declared as templates over the platform environment, resolved at run time (never at load).

A setting is a string with placeholders, or a mapping from environment mode (local, ci, prod, or
`default` for the modes not listed) to such a string; a mode with no entry and no `default` leaves the
setting unset there. Placeholders:

  {landing_dir}            a value of the platform environment: any field or property of
                           `PlatformEnvironment` (landing_dir, duckdb_path, local_dir, schema_prefix, mode,
                           app_db_url, …) or a public constant of platform_assets/environment.py
  {env:NAME}               the environment variable NAME
  {app_db_url.host}        a part of a URL value: host, port, user, password, database (decoded)
  {env:NAME|fallback}      `fallback` (may be empty) where the value is unset or empty
  {env:NAME?}              leave the whole setting unset where the value is unset or empty

Names are checked when the declaration loads; values are read only by `resolve`, and no error message
ever contains one (they may be secrets).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from platform_assets import environment
from platform_assets.environment import Mode, PlatformEnvironment

DEFAULT_MODE = "default"
URL_PARTS = ("host", "port", "user", "password", "database")
_BRACES = re.compile(r"\{([A-Za-z_][^{}]*)\}")
_PLACEHOLDER = re.compile(
    r"(?P<name>env:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\.(?P<part>[a-z]+))?(?:(?P<optional>\?)|\|(?P<fallback>[^{}]*))?"
)
URL_SHAPE = "scheme://user[:password]@host[:port]/database"


class TemplateError(ValueError):
    """A templated setting is malformed or has no value here; the message names where it is declared."""


class _Unset(Exception):
    """The setting is optional and its value is unset: leave it out."""


@cache
def platform_values() -> tuple[str, ...]:
    """The names `{name}` may use: PlatformEnvironment's fields and properties, environment constants."""
    names = [field.name for field in dataclasses.fields(PlatformEnvironment)]
    names += [name for name, value in vars(PlatformEnvironment).items() if isinstance(value, property)]
    names += [
        name
        for name, value in vars(environment).items()
        if name.isupper() and not name.startswith("_") and isinstance(value, str | Path)
    ]
    return tuple(names)


@dataclass(frozen=True)
class Placeholder:
    text: str
    name: str
    part: str | None
    optional: bool
    fallback: str | None

    @classmethod
    def parse(cls, text: str, where: str) -> Placeholder:
        match = _PLACEHOLDER.fullmatch(text[1:-1])
        if match is None:
            raise TemplateError(f"{where}: {text} is not a placeholder ({{name[.part][|fallback or ?]}})")
        name, part = match["name"], match["part"]
        if not name.startswith("env:") and name not in platform_values():
            raise TemplateError(
                f"{where}: unknown placeholder {text}; use {{env:VARIABLE}} or one of: "
                + ", ".join(platform_values())
            )
        if part is not None and part not in URL_PARTS:
            raise TemplateError(f"{where}: {text}: .{part} is not a URL part ({', '.join(URL_PARTS)})")
        return cls(text, name, part, bool(match["optional"]), match["fallback"])

    def value(self, env: PlatformEnvironment, where: str) -> str:
        raw = self._raw(env, where)
        try:
            value = _url_part(raw, self.part) if raw and self.part else raw
        except ValueError:  # urlsplit's own message is safe, but say where
            raise TemplateError(f"{where}: {self.text}: the URL's port is not a number") from None
        if value:
            return value
        if self.fallback is not None:
            return self.fallback
        if self.optional:
            raise _Unset
        hint = f"the URL has no {self.part}; it must look like {URL_SHAPE}" if raw else self._hint()
        raise TemplateError(f"{where}: {self.text} has no value in PLATFORM_ENV={env.mode}; {hint}")

    def _raw(self, env: PlatformEnvironment, where: str) -> str | None:
        if self.name.startswith("env:"):
            return os.environ.get(self.name[4:])
        try:  # upper-case names are the environment module's constants, the others the environment's
            value = getattr(environment if self.name.isupper() else env, self.name)
        except KeyError as missing:  # a property that reads a required variable
            raise TemplateError(
                f"{where}: {self.text} needs the environment variable {missing.args[0]}, which is not set "
                f"(PLATFORM_ENV={env.mode}); set it"
            ) from None
        return None if value is None else str(value)

    def _hint(self) -> str:
        if self.name.startswith("env:"):
            variable = self.name[4:]
            return (
                f"set the environment variable {variable}, or declare a fallback ({{env:{variable}|…}}) "
                f"or make the setting optional ({{env:{variable}?}})"
            )
        return f"configure {self.name} (see PlatformEnvironment in platform_assets/environment.py)"


def _url_part(url: str, part: str) -> str | None:
    parts = urlsplit(url)
    if part == "port":
        return str(parts.port) if parts.port else None
    if part == "database":
        return parts.path.strip("/") or None
    raw = {"host": parts.hostname, "user": parts.username, "password": parts.password}[part]
    return unquote(raw) if raw else None


@dataclass(frozen=True)
class SettingTemplate:
    """One declared setting: the template text per mode, and where it is declared (for errors)."""

    where: str
    by_mode: Mapping[str, str]

    @classmethod
    def parse(cls, declared: str | Mapping[str, str], where: str) -> SettingTemplate:
        by_mode = {DEFAULT_MODE: declared} if isinstance(declared, str) else dict(declared)
        modes = {mode.value for mode in Mode} | {DEFAULT_MODE}
        for mode, text in by_mode.items():
            if mode not in modes:
                raise TemplateError(f"{where}: {mode!r} is not a mode; use {', '.join(sorted(modes))}")
            if not isinstance(text, str):
                raise TemplateError(f"{where}.{mode}: a setting is text (quote numbers and booleans)")
            for found in _BRACES.finditer(text):
                Placeholder.parse(found.group(0), f"{where}.{mode}" if len(by_mode) > 1 else where)
        return cls(where, by_mode)

    def resolve(self, env: PlatformEnvironment) -> str | None:
        """The setting's text in this environment; None where it is left unset."""
        text = self.by_mode.get(env.mode.value, self.by_mode.get(DEFAULT_MODE))
        if text is None:
            return None
        try:
            return _BRACES.sub(lambda found: self._value(found.group(0), env), text)
        except _Unset:
            return None

    def require(self, env: PlatformEnvironment) -> str:
        """The setting's text in this environment; TemplateError where it has none."""
        value = self.resolve(env)
        if value is None:
            raise TemplateError(f"{self.where}: no value is declared for PLATFORM_ENV={env.mode}")
        return value

    def _value(self, placeholder: str, env: PlatformEnvironment) -> str:
        return Placeholder.parse(placeholder, self.where).value(env, self.where)


def parse_settings(declared: Mapping[str, str | Mapping[str, str]], where: str) -> dict[str, SettingTemplate]:
    return {key: SettingTemplate.parse(value, f"{where}.{key}") for key, value in declared.items()}


def resolve_settings(templates: Mapping[str, SettingTemplate], env: PlatformEnvironment) -> dict[str, str]:
    """Every setting that has a value in this environment."""
    resolved = {key: template.resolve(env) for key, template in templates.items()}
    return {key: value for key, value in resolved.items() if value is not None}
