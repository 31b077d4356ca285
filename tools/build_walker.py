"""Compile the counting walker (services/mimir_edge/core/_walker.c) next to its source.

Used by `make walker` (and so `make venv`) for the editable install, and by hatch_build.py for
wheels. Needs a C compiler and Python's headers (Debian: gcc, python3-dev); without them the
walker is simply absent and counting falls back to upb.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "services" / "mimir_edge" / "core" / "_walker.c"


def target(directory: Path) -> Path:
    """Where the compiled walker goes: `_walker` plus this interpreter's extension suffix."""
    return directory / f"_walker{sysconfig.get_config_var('EXT_SUFFIX')}"


def compile_walker(output: Path) -> None:
    """Compile SOURCE into `output`; raises CalledProcessError or OSError when it cannot.

    Written beside and renamed into place, so a process that has the old one loaded keeps it.
    """
    partial = output.with_name(output.name + ".partial")
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    command = [
        *shlex.split(compiler),
        "-O2",
        "-fPIC",
        "-shared",
        "-Wall",
        f"-I{sysconfig.get_paths()['include']}",
        str(SOURCE),
        "-o",
        str(partial),
    ]
    subprocess.run(command, check=True)
    os.replace(partial, output)


def main() -> int:
    output = target(SOURCE.parent)
    try:
        compile_walker(output)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"build_walker: could not compile {SOURCE.name} ({exc}); counting will use upb", file=sys.stderr)
        return 1
    print(f"build_walker: {output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
