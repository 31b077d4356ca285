"""The Kubernetes client is an extra (`mimir-edge-enforcement[sync]`): everything but the
Kubernetes source and Lease election imports without it, and overrides-sync asked for those says
what to install instead of failing with an ImportError."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Makes `import kubernetes` fail in the child as if the extra were not installed.
WITHOUT_KUBERNETES = "import sys; sys.modules['kubernetes'] = None\n"
NEED_KUBERNETES = {"mimir_edge.sync.kubernetes", "mimir_edge.sync.leader"}


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_KUBERNETES + code], capture_output=True, text=True, timeout=60, check=False
    )


def test_every_other_module_imports_without_the_kubernetes_client() -> None:
    code = f"""
import pkgutil, mimir_edge
names = [m.name for m in pkgutil.walk_packages(mimir_edge.__path__, "mimir_edge.")]
for name in sorted(set(names) - {NEED_KUBERNETES!r}):
    __import__(name)
print(len(names))
"""
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 50
    blocked = python("import mimir_edge.sync.leader")
    assert blocked.returncode == 1 and "ModuleNotFoundError" in blocked.stderr  # the block is real


@pytest.mark.parametrize(
    ("argv", "flag"),
    [(["--source", "kubernetes"], "--source kubernetes"), (["--path", "x", "--leader-elect"], "--leader-elect")],
)
def test_overrides_sync_says_to_install_the_sync_extra(argv: list[str], flag: str) -> None:
    result = python(f"from mimir_edge.sync.main import main; main({argv!r})")
    assert result.returncode == 2
    assert f"{flag} needs the Kubernetes client: pip install 'mimir-edge-enforcement[sync]'" in result.stderr
    assert "Traceback" not in result.stderr
