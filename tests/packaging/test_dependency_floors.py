"""The declared floors are real: a virtualenv holding exactly the lowest version pyproject.toml
allows of every runtime dependency (and of the `sync` extra) installs, imports every module of the
package and passes tests/unit."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.packaging.venvs import ROOT, build_wheel, clean_env, new_venv, pip_install, run

#: The test runner and its plugins, as the dev extra declares them (not pinned: not the package's).
TEST_TOOLS = ("pytest", "pytest-asyncio", "pytest-timeout", "hypothesis")
#: grpcio-tools (the dev extra's protoc) needs a newer grpcio than the floor, and what it checks,
#: that the committed _pb2 files are fresh, does not depend on the runtime's versions. The load
#: test's locustfile needs locust (the dev extra), not part of the runtime either.
NEEDS_DEV_TOOLS = [
    "tests/unit/test_protos_fresh.py",
    "tests/unit/test_scripts_import.py::test_script_imports[loadtest/locustfile.py]",
]


def floor(text: str) -> str:
    """`name>=X; marker` as `name==X; marker`; a dependency without a floor is an error."""
    requirement = Requirement(text)
    floors = [s.version for s in requirement.specifier if s.operator == ">="]
    assert len(floors) == 1, f"{text!r} declares no single >= floor"
    marker = f"; {requirement.marker}" if requirement.marker else ""
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}=={floors[0]}{marker}"


def test_floor_pins_a_requirement() -> None:
    assert floor("uvloop>=0.21; sys_platform != 'win32'") == 'uvloop==0.21; sys_platform != "win32"'
    assert floor("redis[hiredis]>=5.2") == "redis[hiredis]==5.2"
    with pytest.raises(AssertionError, match="no single >= floor"):
        floor("grpcio")


@pytest.mark.packaging
@pytest.mark.timeout(1200)
def test_the_lowest_declared_versions_import_everything_and_pass_the_unit_tests(tmp_path: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [floor(r) for r in [*project["dependencies"], *project["optional-dependencies"]["sync"]]]
    dev = {Requirement(r).name: r for r in project["optional-dependencies"]["dev"]}
    venv = new_venv(tmp_path / "venv")
    pip_install(venv, *pins, *(dev[name] for name in TEST_TOOLS))
    # The package itself, without letting pip move any floor.
    pip_install(venv, "--no-deps", build_wheel(tmp_path / "dist"))
    python = venv / "bin" / "python"
    freeze = run([python, "-m", "pip", "list", "--format=freeze"], env=clean_env()).stdout
    installed = {canonicalize_name(name): version for name, version in (line.split("==") for line in freeze.split())}
    for requirement in map(Requirement, pins):
        if requirement.marker is None or requirement.marker.evaluate():
            assert requirement.specifier.contains(installed[canonicalize_name(requirement.name)]), requirement
    run([python, "-m", "pip", "check"], env=clean_env())
    imported = run(
        [
            python,
            "-W",
            "error",
            "-c",
            "import pkgutil, mimir_edge\n"
            "names = [m.name for m in pkgutil.walk_packages(mimir_edge.__path__, 'mimir_edge.')]\n"
            "for name in names: __import__(name)\n"
            "print(mimir_edge.__file__, len(names))",
        ],
        env=clean_env(),
        cwd=tmp_path,
    ).stdout.split()
    assert imported[0].startswith(str(venv)), "imported the checkout, not the installed package"
    assert int(imported[1]) > 50
    deselect = [arg for path in NEEDS_DEV_TOOLS for arg in ("--deselect", path)]
    # From the repo root (the tests and their fixtures), importing the package the venv installed.
    run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit", *deselect], env=clean_env(), cwd=ROOT)
