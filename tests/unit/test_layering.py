"""The layers stay layers: rendering a config imports neither grpc nor redis, the wire contract
imports nothing, and no two parts of mimir_edge (rls, admin, store, ...) import each other."""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mimir_edge

PACKAGE = Path(mimir_edge.__file__).parent
#: Modules the renderers must never pull in: the RLS's runtime (grpc, Envoy's protobufs, the
#: store, redis) does not exist where configs are rendered (a laptop, CI, an init container).
HEAVY = ("grpc", "grpc_health", "redis", "envoy", "google.protobuf", "mimir_edge.rls", "mimir_edge.store")


def imported_modules(code: str) -> list[str]:
    """Every module `python -X importtime -c code` imports, in order."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("import time:")]
    assert lines, run.stderr
    return [line.rsplit("|", 1)[1].strip() for line in lines[1:]]  # the first line is the header


def test_rendering_configs_imports_neither_grpc_nor_redis() -> None:
    modules = imported_modules("import mimir_edge.deploy.envoy, mimir_edge.deploy.nginx, mimir_edge.deploy.rollout")
    assert "mimir_edge.deploy.envoy" in modules and "mimir_edge.contract" in modules
    heavy = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []


def test_the_contract_module_imports_nothing() -> None:
    tree = ast.parse((PACKAGE / "contract.py").read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert all(isinstance(node, ast.ImportFrom) and node.module == "__future__" for node in imports)


def part_of(module: str) -> str | None:
    """The top-level part of mimir_edge a module belongs to: `mimir_edge.rls.server` → `rls`."""
    parts = module.split(".")
    if parts[0] != "mimir_edge" or len(parts) < 2:
        return None
    name = parts[1]
    if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file():
        return name
    return None  # an attribute of mimir_edge itself, e.g. __version__


def imports_of(path: Path) -> Iterator[str]:
    """Every mimir_edge module a file imports, lazily inside functions or not."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            assert node.module is not None
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def part_graph() -> dict[str, dict[str, set[str]]]:
    """part → part it imports → the files that do."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "proto":  # generated
            continue
        source = relative.parts[0].removesuffix(".py")
        for module in imports_of(path):
            target = part_of(module)
            if target is not None and target != source:
                graph.setdefault(source, {}).setdefault(target, set()).add(str(relative))
    return graph


def find_cycle(graph: dict[str, dict[str, set[str]]]) -> list[str]:
    """One cycle of the graph as [a, b, ..., a], or [] when there is none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        for target in sorted(graph.get(node, {})):
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return []

    for node in sorted(graph):
        cycle = visit(node, [])
        if cycle:
            return cycle
    return []


def test_the_graph_walk_sees_imports_and_cycles() -> None:
    graph = part_graph()
    # the wiring: rls/server.py starts the admin API
    assert "rls/server.py" in graph["rls"]["admin"]
    assert "rls/registry.py" in graph["rls"]["core"]
    assert find_cycle({"a": {"b": set()}, "b": {"c": set()}, "c": {"a": set()}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": set()}, "b": {}}) == []


def test_admin_does_not_import_rls() -> None:
    assert "rls" not in part_graph().get("admin", {}), part_graph()["admin"]["rls"]


def test_no_two_parts_import_each_other() -> None:
    graph = part_graph()
    cycle = find_cycle(graph)
    where = {f"{a} → {b}": sorted(graph[a][b]) for a, b in itertools.pairwise(cycle)}
    assert cycle == [], where
