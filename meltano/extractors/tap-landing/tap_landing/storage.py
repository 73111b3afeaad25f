"""Where the landing files are: a local folder or an object-store prefix, one fsspec code path for both.

`root` is a folder (`/data/landing`) or a URL (`s3://bucket/prefix`); each stream reads the files directly
under `<root>/<stream>/`. On S3 an object is visible only once its upload completed (a multipart upload in
progress is not listed), so listing never shows a half-written object; locally a dot-file is a drop still
being written, and a last line without its newline waits (parsing.LandingFile) in both places.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


@dataclass(frozen=True)
class LandingEntry:
    """One landing file: its storage path, the name shown in errors, and its file name."""

    path: str
    shown: str
    name: str


class LandingStorage:
    """The landing root on its filesystem: lists a stream's files and opens them."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None):
        options = {key: value for key, value in (storage_options or {}).items() if value}
        self.fs, self.root = fsspec.core.url_to_fs(root, **options)
        self.fs.invalidate_cache()  # a long-lived fs instance may hold an old listing

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def shown(self, path: str) -> str:
        """How errors name a file: the plain path locally, the full URL (s3://…) elsewhere."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def folder(self, stream: str) -> str:
        return f"{self.root.rstrip('/')}/{stream}"

    def files(self, stream: str) -> list[LandingEntry] | None:
        """The files directly in the stream's folder, by name (dot-files left out); None: no folder."""
        try:
            listed = self.fs.ls(self.folder(stream), detail=True)
        except FileNotFoundError:
            return None
        entries = []
        for info in listed:
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if info["type"] == "file" and not name.startswith("."):  # dot-files: drops still being written
                entries.append(LandingEntry(info["name"], self.shown(info["name"]), name))
        return sorted(entries, key=lambda entry: entry.name)

    def opener(self, path: str) -> Callable[[], IO[bytes]]:
        return lambda: self.fs.open(path, "rb")
