"""Every script outside the package (bench/, loadtest/, monitoring/, tools/) imports: lint does not
type-check them, so a name moved in the package would otherwise break them only when run (as
`make loadtest` once did, at the end of `.ci/run`)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for folder in ("bench", "loadtest", "monitoring", "tools") for p in (ROOT / folder).glob("*.py"))
#: Importing locust monkey-patches the standard library (gevent): never in the test process.
IN_A_SUBPROCESS = {ROOT / "loadtest" / "locustfile.py"}


def test_the_scripts_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in SCRIPTS}
    assert {"bench/run.py", "loadtest/run.py", "loadtest/locustfile.py", "monitoring/dashboard.py"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_script_imports(path: Path) -> None:
    # Under a name that is not "__main__": the scripts' entry points do not run.
    name = "script_under_test_" + path.relative_to(ROOT).as_posix().replace("/", "_").removesuffix(".py")
    if path in IN_A_SUBPROCESS:
        code = f"import runpy; runpy.run_path({str(path)!r}, run_name={name!r})"
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
