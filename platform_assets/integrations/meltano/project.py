"""What the committed meltano.yml declares: plugins and the streams each extractor can emit.

Read with PyYAML only (no `meltano` subprocess, no discovery), so Dagster's definitions load stays offline.
An extractor's streams are the names in its `select` patterns (`<stream>.*`) plus, for taps configured
with a `streams:` list (tap-landing), the `name` of each entry.

A plugin may `inherit_from` another (Meltano plugin inheritance): it shares its parent's installation and
settings, has its own name and therefore its own Meltano state id, e.g. the same tap reading a second
Salesforce org. Its streams are its own `select` where it has one, else its parent's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml


class MeltanoProjectError(ValueError):
    """meltano.yml is missing or does not declare what the platform needs; names the file and key."""


@dataclass(frozen=True)
class Extractor:
    name: str
    load_schema: str | None
    streams: tuple[str, ...]
    settings: tuple[str, ...]
    venv_name: str = ""
    """The plugin whose installed venv runs this one: itself, or the parent it inherits from."""


@dataclass(frozen=True)
class MeltanoProject:
    root: Path
    extractors: dict[str, Extractor]
    loaders: tuple[str, ...]
    environments: tuple[str, ...]

    @property
    def file(self) -> Path:
        return self.root / "meltano.yml"

    def extractor(self, name: str, *, where: str) -> Extractor:
        if name not in self.extractors:
            raise MeltanoProjectError(
                f"{where}: extractor {name!r} is not a plugin in {self.file} "
                f"(extractors there: {', '.join(self.extractors) or 'none'}); add it under plugins.extractors"
            )
        return self.extractors[name]

    def check_loader(self, name: str, *, where: str) -> None:
        if name not in self.loaders:
            raise MeltanoProjectError(
                f"{where}: loader {name!r} is not a plugin in {self.file} "
                f"(loaders there: {', '.join(self.loaders) or 'none'}); add it under plugins.loaders"
            )


def _streams(plugin: dict[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for pattern in plugin.get("select") or []:
        stream = str(pattern).lstrip("!").split(".", 1)[0]
        if not str(pattern).startswith("!") and stream not in names:
            names.append(stream)
    for entry in (plugin.get("config") or {}).get("streams") or []:
        if isinstance(entry, dict) and entry.get("name") and entry["name"] not in names:
            names.append(str(entry["name"]))
    return tuple(names)


def _plugins(document: dict[str, Any], kind: str, file: Path) -> list[dict[str, Any]]:
    plugins = (document.get("plugins") or {}).get(kind) or []
    names = {plugin.get("name") for plugin in plugins}
    for index, plugin in enumerate(plugins):
        parent = plugin.get("inherit_from")
        if parent is not None and (parent not in names or parent == plugin.get("name")):
            raise MeltanoProjectError(
                f"{file}: plugins.{kind}[{index}] ({plugin.get('name', '?')}) inherits from {parent!r}, "
                f"which is not another plugin of plugins.{kind}"
            )
        required = ("name",) if parent else ("name", "namespace", "pip_url", "executable")
        missing = [key for key in required if not plugin.get(key)]
        if missing:
            raise MeltanoProjectError(
                f"{file}: plugins.{kind}[{index}] ({plugin.get('name', '?')}) lacks {', '.join(missing)}; "
                "every plugin needs namespace, pip_url and executable (Meltano Hub is not reachable)"
            )
    return plugins


def _extractor(name: str, declared: dict[str, dict[str, Any]]) -> Extractor:
    plugin = declared[name]
    parent = _extractor(plugin["inherit_from"], declared) if plugin.get("inherit_from") else None
    own_settings = tuple(s["name"] for s in plugin.get("settings") or [])
    if parent is None:
        return Extractor(name, plugin.get("load_schema"), _streams(plugin), own_settings, name)
    # Meltano runs an inheriting plugin in its parent's venv unless it has a pip_url of its own.
    own_venv = plugin.get("pip_url") and plugin["pip_url"] != declared[plugin["inherit_from"]].get("pip_url")
    return Extractor(
        name=name,
        load_schema=plugin.get("load_schema", parent.load_schema),
        streams=_streams(plugin) or parent.streams,
        settings=parent.settings + tuple(s for s in own_settings if s not in parent.settings),
        venv_name=name if own_venv else parent.venv_name,
    )


@cache
def load_project(root: Path) -> MeltanoProject:
    file = root / "meltano.yml"
    try:
        document = yaml.safe_load(file.read_text()) or {}
    except FileNotFoundError:
        raise MeltanoProjectError(f"{file} does not exist: the Meltano project is missing") from None
    except yaml.YAMLError as error:
        raise MeltanoProjectError(f"{file} is not valid YAML: {error}") from None
    declared = {plugin["name"]: plugin for plugin in _plugins(document, "extractors", file)}
    extractors = {name: _extractor(name, declared) for name in declared}
    loaders = tuple(plugin["name"] for plugin in _plugins(document, "loaders", file))
    environments = tuple(e["name"] for e in document.get("environments") or [])
    return MeltanoProject(root=root, extractors=extractors, loaders=loaders, environments=environments)
