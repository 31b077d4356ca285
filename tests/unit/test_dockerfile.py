"""The container image, checked by reading the Dockerfile (no Docker engine here to build it).

It builds the project's wheel in one stage and installs only wheels in the next; runs as a fixed
non-root UID; exposes exactly the contract's ports; starts a console script that pyproject.toml
declares; its build context holds every input of the wheel (the Lua scripts included); and a
build argument leaves the Kubernetes client (the `sync` extra) out of the RLS's image.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mimir_edge.address import parse_host_port
from mimir_edge.rls.settings import parse_settings
from mimir_edge.sync.main import build_parser as sync_parser
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
BASE = "python:3.11-slim"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile: comments dropped, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, ()))
        else:
            assert stages, f"{keyword} before FROM"
            last = stages[-1]
            stages[-1] = Stage(last.base, last.name, (*last.instructions, Instruction(keyword, args.strip())))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def exec_form(args: str) -> list[str]:
    """CMD/ENTRYPOINT in JSON (exec) form, the only form that gets signals as PID 1."""
    assert args.startswith("["), f"{args} is not in exec form"
    return [w.strip().strip('"') for w in args.strip("[]").split(",")]


def test_two_stages_from_python_slim_wheel_then_install(stages: list[Stage]) -> None:
    build, runtime = stages
    assert build.base == runtime.base == BASE
    assert build.name == "build"
    assert any(re.search(r"\bpip wheel\b.* '\.\[sync\]'$", run) for run in build.all("RUN"))
    (install,) = [run for run in runtime.all("RUN") if "pip install" in run]
    # Only the wheels built in the first stage: no index, no source tree in the image.
    assert "--no-index" in install and "from=build" in install
    assert not runtime.all("COPY") and not runtime.all("ADD")


def test_a_build_arg_leaves_the_kubernetes_client_out(stages: list[Stage], pyproject: dict[str, Any]) -> None:
    project = pyproject["project"]
    base = {Requirement(r).name for r in project["dependencies"]}
    sync = {Requirement(r).name for r in project["optional-dependencies"]["sync"]}
    assert "kubernetes" in sync and "kubernetes" not in base
    runtime = stages[-1]
    # The build stage makes every wheel; the runtime installs the package with EXTRAS (default: sync,
    # so the one image still runs every entry point; `--build-arg EXTRAS=` drops the client).
    assert "EXTRAS=sync" in runtime.all("ARG")
    (install,) = [run for run in runtime.all("RUN") if "pip install" in run]
    assert '"mimir-edge-enforcement[${EXTRAS}]"' in install


def test_build_stage_has_a_c_compiler_for_the_walker(stages: list[Stage]) -> None:
    build, runtime = stages
    installs = [run for run in build.all("RUN") if "apt-get install" in run]
    assert installs and "gcc" in installs[0], "without gcc the wheel is pure and counting falls back to upb"
    # Before the wheel is built, and only in the build stage: the runtime image has no compiler.
    runs = build.all("RUN")
    assert runs.index(installs[0]) < next(i for i, run in enumerate(runs) if "pip wheel" in run)
    assert not any("gcc" in run for run in runtime.all("RUN"))


def test_runs_as_a_fixed_non_root_uid(stages: list[Stage]) -> None:
    runtime = stages[-1]
    users = runtime.all("USER")
    assert users, "no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) >= 10000 and (not gid or gid.isdigit())
    (create,) = [run for run in runtime.all("RUN") if "useradd" in run]
    assert f"--uid {uid}" in create
    # Nothing runs as root after the switch.
    keywords = [i.keyword for i in runtime.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_charts_run_the_same_uid(stages: list[Stage]) -> None:
    uid = int(stages[-1].all("USER")[-1].partition(":")[0])
    for chart in ("mimir-rls", "overrides-sync"):
        values = (ROOT / "charts" / chart / "values.yaml").read_text()
        assert f"runAsUser: {uid}" in values, chart


def test_exposes_exactly_the_contract_ports(stages: list[Stage]) -> None:
    exposed = {int(p.split("/")[0]) for args in stages[-1].all("EXPOSE") for p in args.split()}
    rls = parse_settings([], env={})
    sync = sync_parser(env={}).parse_args(["--source", "file", "--path", "x"])
    addresses = (rls.grpc_addr, rls.authz_http_addr, rls.admin_addr, rls.metrics_addr, sync.http_addr)
    contract = {parse_host_port(addr)[1] for addr in addresses}
    assert exposed == contract == {8081, 8083, 8082, 9090, 9091}


def test_starts_a_declared_console_script(stages: list[Stage], pyproject: dict[str, Any]) -> None:
    scripts = pyproject["project"]["scripts"]
    assert set(scripts) == {"mimir-rls", "mimir-overrides-sync", "mimir-edge"}
    runtime = stages[-1]
    command = runtime.all("ENTRYPOINT") or runtime.all("CMD")
    assert command, "no CMD/ENTRYPOINT"
    assert exec_form(command[-1])[0] in scripts


def test_read_only_root_filesystem_friendly(stages: list[Stage]) -> None:
    env = " ".join(stages[-1].all("ENV"))
    # No .pyc written at run time (compiled at install instead), HOME somewhere writable.
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env
    assert "--compile" in next(run for run in stages[-1].all("RUN") if "pip install" in run)
    assert not stages[-1].all("VOLUME")


def glob_regex(pattern: str) -> str:
    """A .dockerignore pattern as a regex: `**` any depth, `*` and `?` within one path element."""
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return out


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = glob_regex(pattern.removeprefix("!").strip("/"))
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_rules_as_docker_reads_them() -> None:
    patterns = ["*", "!services/", "**/__pycache__"]
    assert dockerignore_excludes("tests/unit", patterns)
    assert not dockerignore_excludes("services/mimir_edge/cli.py", patterns)
    assert dockerignore_excludes("services/mimir_edge/__pycache__/cli.pyc", patterns)


def wheel_inputs(pyproject: dict[str, Any]) -> list[str]:
    hatch = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    return [*hatch["packages"], *hatch["force-include"], pyproject["project"]["readme"], "pyproject.toml"]


def copied(stage: Stage) -> set[str]:
    sources: set[str] = set()
    for args in stage.all("COPY"):
        *paths, _ = shlex.split(args)
        sources |= {s.rstrip("/") for s in paths}
    return sources


def test_the_loadtest_image_copies_every_wheel_input(pyproject: dict[str, Any]) -> None:
    (stage,) = parse_dockerfile((ROOT / "loadtest" / "Dockerfile").read_text())
    assert any("pip install" in run and " . " in run for run in stage.all("RUN"))
    missing = [p for p in wheel_inputs(pyproject) if p.split("/")[0] not in copied(stage) and p not in copied(stage)]
    assert missing == []


def test_build_context_holds_every_wheel_input(stages: list[Stage], pyproject: dict[str, Any]) -> None:
    needed = wheel_inputs(pyproject)
    assert "lua" in needed, "the Lua scripts must be inside the wheel"
    assert "examples/overrides.yaml" in needed, "`mimir-edge up` needs the demo's overrides inside the wheel"
    # The build hook that compiles the counting walker, and what it runs.
    hatch = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed += [hatch["hooks"]["custom"]["path"], "tools/build_walker.py"]
    copied_paths = copied(stages[0])
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in needed:
        top = path.split("/")[0]
        assert top in copied_paths or path in copied_paths, f"{path} is not copied into the build stage"
        assert not dockerignore_excludes(path, patterns), f".dockerignore drops {path}"
    assert (ROOT / "lua" / "token_bucket.lua").exists()
    for noise in (
        ".venv",
        ".git",
        ".tools",
        "tests",
        "charts",
        "services/mimir_edge/__pycache__",
        "services/mimir_edge/core/_walker.cpython-311-x86_64-linux-gnu.so",  # compiled in the image instead
    ):
        assert dockerignore_excludes(noise, patterns), f".dockerignore lets {noise} into the build context"
