"""Hatch build hook: compile the counting walker (services/mimir_edge/core/_walker.c) into the wheel.

Without a C compiler (or Python's headers) it warns and builds a pure wheel: counting then runs on
upb, the walker's plain twin. For an editable install (`pip install -e .`) the walker is compiled
in place, next to its source, where the editable install imports it from.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class WalkerBuildHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        spec = importlib.util.spec_from_file_location("build_walker", Path(self.root) / "tools" / "build_walker.py")
        assert spec is not None and spec.loader is not None
        build_walker = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(build_walker)
        editable = version == "editable"
        self._scratch = "" if editable else tempfile.mkdtemp(prefix="walker-")
        output = build_walker.target(Path(self._scratch) if self._scratch else build_walker.SOURCE.parent)
        try:
            build_walker.compile_walker(output)
        except (OSError, subprocess.CalledProcessError) as exc:
            self.app.display_warning(f"the counting walker was not compiled ({exc}); counting will use upb")
            return
        if not editable:
            build_data["force_include"][str(output)] = f"mimir_edge/core/{output.name}"
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch: str = getattr(self, "_scratch", "")
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
