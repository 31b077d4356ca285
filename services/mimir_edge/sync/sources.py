"""Where the overrides document comes from. A source yields events; parsing is core's job.

Every source yields `Loaded` with the raw texts when they change (and again at each periodic
resync, so drift in Redis is repaired), `Missing` when the document disappeared (the last good
limits stay in Redis), and `Unreadable` for errors that may pass.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from mimir_edge import cancellation
from mimir_edge.core.errors import OverridesError
from mimir_edge.core.overrides import RuntimeOverrides, parse_defaults, parse_runtime_overrides


@dataclass(frozen=True, slots=True)
class OverridesDocuments:
    overrides: str
    defaults: str | None = None

    def parse(self) -> RuntimeOverrides:
        return parse_runtime_overrides(self.overrides, parse_defaults(self.defaults))

    @property
    def digest(self) -> str:
        h = hashlib.sha256(self.overrides.encode())
        h.update(b"\0" + (self.defaults or "").encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Loaded:
    documents: OverridesDocuments
    origin: str
    resync: bool = False


@dataclass(frozen=True, slots=True)
class Missing:
    reason: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    reason: str


SourceEvent = Loaded | Missing | Unreadable


def read_files(path: Path, defaults_path: Path | None = None) -> OverridesDocuments:
    """Read the overrides file (and the defaults file); raises OverridesError if unreadable."""
    return OverridesDocuments(
        overrides=_read(path, "overrides"),
        defaults=_read(defaults_path, "defaults") if defaults_path else None,
    )


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise OverridesError(f"cannot read {what} file {str(path)!r}: {exc.strerror}") from None


def _signature(path: Path | None) -> tuple[object, ...] | None:
    """What changes when the file is edited or its symlink chain is swapped (ConfigMap volumes
    replace `..data` atomically: the path stays, the inode behind it changes)."""
    if path is None:
        return ()
    try:
        st = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        return None
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class FileSource:
    """Polls the file(s); cheap `stat` calls, content read only when something changed."""

    def __init__(
        self, path: Path, defaults_path: Path | None = None, *, interval_s: float = 0.25, resync_s: float = 60.0
    ):
        self.path = path
        self.defaults_path = defaults_path
        self.interval_s = interval_s
        self.resync_s = resync_s

    def describe(self) -> str:
        return f"file {self.path}"

    async def events(self) -> AsyncIterator[SourceEvent]:
        last_signature: object = object()
        last_digest = ""
        missing_reported = False
        next_resync = time.monotonic() + self.resync_s
        while True:
            signature = (_signature(self.path), _signature(self.defaults_path))
            resync = time.monotonic() >= next_resync
            if None in signature:
                if not missing_reported:
                    missing = self.path if signature[0] is None else self.defaults_path
                    yield Missing(f"file {missing} does not exist")
                    missing_reported = True
                last_signature = signature
            elif signature != last_signature or resync:
                last_signature = signature
                missing_reported = False
                try:
                    documents = read_files(self.path, self.defaults_path)
                except OverridesError as exc:  # vanished between stat and read, or unreadable
                    yield Unreadable(str(exc))
                    last_signature = object()
                else:
                    if documents.digest != last_digest or resync:
                        last_digest = documents.digest
                        yield Loaded(documents, f"{self.describe()} sha256:{documents.digest}", resync=resync)
            if resync:
                next_resync = time.monotonic() + self.resync_s
            await cancellation.sleep(self.interval_s)
