"""Where the overrides document comes from. Each source yields the raw texts; parsing is core."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mimir_edge.core.errors import OverridesError
from mimir_edge.core.overrides import RuntimeOverrides, parse_defaults, parse_runtime_overrides


@dataclass(frozen=True, slots=True)
class OverridesDocuments:
    overrides: str
    defaults: str | None = None

    def parse(self) -> RuntimeOverrides:
        return parse_runtime_overrides(self.overrides, parse_defaults(self.defaults))


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
