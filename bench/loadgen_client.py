"""Run bench/loadgen.py in its own process (optionally pinned to `cpus`) and return its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_loadgen(
    mode: str, url: str, body_file: Path, headers: dict[str, str], cpus: set[int] | None = None, **kw: Any
) -> dict[str, Any]:
    """`mode` is "open", "closed" or "sequential"; keyword arguments become loadgen's flags."""
    argv = [sys.executable, "-m", "bench.loadgen", mode, "--url", url, "--body-file", str(body_file)]
    argv += ["--headers", json.dumps(headers)]
    for key, value in kw.items():
        argv += [f"--{key}", str(value)]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=pin)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen {mode} {url} failed ({out.returncode}): {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout))
