"""The committed protobuf code is exactly what `make protos` generates from protos/."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto"))
    assert sources
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            "protos",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            *sources,
        ],
        cwd=ROOT,
        check=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2.py*"))
    assert generated
    stale = [str(p) for p in generated if not filecmp.cmp(tmp_path / p, ROOT / "services" / p, shallow=False)]
    assert not stale, f"run `make protos` and commit: {stale}"
    committed = sorted(p.relative_to(ROOT / "services") for p in (ROOT / "services").rglob("*_pb2.py*"))
    assert committed == generated, "generated files without a .proto source (or the reverse)"
