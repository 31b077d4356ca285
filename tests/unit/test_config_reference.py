"""docs/configuration.md is what the programs' parsers accept, and nothing reads the environment
behind the parsers' back (a variable read elsewhere would be missing from the document and from
the Helm and compose tests, which take their names from the same parsers)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from mimir_edge.cli import build_parser as cli_parser
from mimir_edge.config_reference import DOC_PATH, env_flags, env_vars, render, rls_parser, sync_parser
from mimir_edge.rls.settings import build_parser as rls_build_parser
from mimir_edge.rls.settings import parse_settings
from mimir_edge.sync.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services" / "mimir_edge"


def test_the_committed_reference_is_fresh() -> None:
    committed = (ROOT / DOC_PATH).read_text()
    assert committed == render(cli_parser()), f"{DOC_PATH} is stale: run `make config-doc` and commit it"


def section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize(("program", "parser"), [("mimir-rls", rls_parser), ("mimir-overrides-sync", sync_parser)])
def test_every_environment_variable_has_one_row(program: str, parser: object) -> None:
    names = env_vars(parser())  # type: ignore[operator]
    rows = re.findall(r"^\| `([A-Z_]+)` \|", section(render(cli_parser()), program), flags=re.MULTILINE)
    assert sorted(rows) == sorted(names) and len(rows) == len(set(rows))
    assert {"REDIS_URL", "REDIS_CLUSTER_NODES", "LOG_LEVEL"} <= names


def test_each_listed_variable_is_read_by_its_flag() -> None:
    """The parser really takes each documented variable from the environment: set alone, it
    changes what the flag parses to."""
    programs = [(rls_build_parser, env_flags(rls_parser())), (build_parser, env_flags(sync_parser()))]
    for build, actions in programs:
        for action in actions:
            if action.choices:
                value = next(str(c) for c in action.choices if c != action.default)
            else:
                value = {bool: "false" if action.default else "true", int: "7", float: "7.5"}.get(
                    type(action.default), "127.0.0.1:7"
                )
            args = build(env={action.env_var: value}).parse_args([])
            assert getattr(args, action.dest) != action.default, action.env_var


def test_the_parsed_settings_come_from_the_environment() -> None:
    settings = parse_settings([], env={"GRPC_ADDR": "127.0.0.1:1", "FAILURE_MODE": "local", "TENANT_HEADER": "X-T"})
    assert (settings.grpc_addr, settings.failure_mode.value, settings.tenant_header) == ("127.0.0.1:1", "local", "x-t")


ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")


def environment_reads(source: str) -> list[int]:
    """Lines reading a setting outside env_flag: `os.environ[...]`, `os.getenv(...)`,
    `os.environ.get(...)`, or `<mapping>.get("SOME_NAME")` on an injected environment."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            lines.append(node.lineno)
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            named = bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
            if func in ("os.getenv", "os.environ.get", "getenv") or (
                func.endswith(".get") and named and ENV_NAME.match(node.args[0].value)  # type: ignore[union-attr]
            ):
                lines.append(node.lineno)
    return lines


def test_the_environment_scan_finds_reads() -> None:
    code = 'import os\na = os.environ["A_B"]\nb = os.getenv("X")\nc = env.get("HTTP_ADDR", "")\nd = h.get("x-scope")\n'
    assert environment_reads(code) == [2, 3, 4]


def test_programs_read_the_environment_only_through_their_parsers() -> None:
    # localstack/ starts the programs and hands them its environment; it reads no setting itself.
    offenders = {
        str(path.relative_to(SERVICES)): environment_reads(path.read_text())
        for path in SERVICES.rglob("*.py")
        if path.relative_to(SERVICES).parts[0] != "proto"
    }
    assert {path: lines for path, lines in offenders.items() if lines} == {}
