"""Fresh virtualenvs for the packaging tests: the project's wheel, pip from the package index."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_env(venv: Path | None = None) -> dict[str, str]:
    """The environment without this checkout on the import path (PYTHONPATH would shadow what the
    venv installed) and, given a venv, with only its bin/ on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    if venv is not None:
        env["PATH"] = str(venv / "bin")
    return env


def run(argv: Sequence[str | Path], *, timeout_s: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run to completion; on failure, an assertion with the command's output."""
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout_s, check=False, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, (
        f"{argv} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result  # type: ignore[no-any-return]


def build_wheel(out: Path) -> Path:
    """The project's wheel, built as `pip wheel` builds it (its build backend from the index)."""
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, ROOT], env=clean_env())
    (wheel,) = out.glob("mimir_edge_enforcement-*.whl")
    return wheel


def new_venv(path: Path) -> Path:
    run([sys.executable, "-m", "venv", path], env=clean_env())
    return path


def pip_install(venv: Path, *requirements: str | Path) -> None:
    run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", *requirements], env=clean_env())
