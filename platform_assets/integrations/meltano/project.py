"""What the committed meltano.yml declares: plugins and the streams each extractor can emit.

Read with PyYAML only (no `meltano` subprocess, no discovery), so Dagster's definitions load stays offline.
An extractor's streams are the names in its `select` patterns (`<stream>.*`) plus, for taps configured
with a `streams:` list (tap-landing), the `name` of each entry.
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
    for index, plugin in enumerate(plugins):
        missing = [key for key in ("name", "namespace", "pip_url", "executable") if not plugin.get(key)]
        if missing:
            raise MeltanoProjectError(
                f"{file}: plugins.{kind}[{index}] ({plugin.get('name', '?')}) lacks {', '.join(missing)}; "
                "every plugin needs namespace, pip_url and executable (Meltano Hub is not reachable)"
            )
    return plugins


@cache
def load_project(root: Path) -> MeltanoProject:
    file = root / "meltano.yml"
    try:
        document = yaml.safe_load(file.read_text()) or {}
    except FileNotFoundError:
        raise MeltanoProjectError(f"{file} does not exist: the Meltano project is missing") from None
    except yaml.YAMLError as error:
        raise MeltanoProjectError(f"{file} is not valid YAML: {error}") from None
    extractors = {
        plugin["name"]: Extractor(
            name=plugin["name"],
            load_schema=plugin.get("load_schema"),
            streams=_streams(plugin),
            settings=tuple(s["name"] for s in plugin.get("settings") or []),
        )
        for plugin in _plugins(document, "extractors", file)
    }
    loaders = tuple(plugin["name"] for plugin in _plugins(document, "loaders", file))
    environments = tuple(e["name"] for e in document.get("environments") or [])
    return MeltanoProject(root=root, extractors=extractors, loaders=loaders, environments=environments)
