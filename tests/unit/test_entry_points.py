"""The console scripts exist and explain themselves; settings follow the contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mimir_edge.rls.settings import parse_settings

ROOT = Path(__file__).resolve().parents[2]


def script_path(name: str) -> str:
    """The console script of the venv running the tests (or on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e . in the venv"
    return found


@pytest.mark.parametrize("script", ["mimir-rls", "mimir-overrides-sync", "mimir-edge"])
def test_console_script_prints_help(script: str) -> None:
    out = subprocess.run([script_path(script), "--help"], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.startswith(f"usage: {script}")


def test_rls_defaults_are_the_contract() -> None:
    s = parse_settings([], env={})
    assert (s.grpc_addr, s.admin_addr, s.metrics_addr) == ("0.0.0.0:8081", "0.0.0.0:8082", "0.0.0.0:9090")
    assert s.failure_mode_allow is True and s.enforcement_disabled is False
    assert s.max_request_bytes == 52428800
    assert s.tenant_header == "x-scope-orgid"
    assert s.redis.cluster_nodes == ()


def test_rls_env_and_flags() -> None:
    env = {
        "FAILURE_MODE_ALLOW": "false",
        "REDIS_CLUSTER_NODES": "10.0.0.1:7000, 10.0.0.2:7001",
        "MAX_REQUEST_BYTES": "1024",
    }
    s = parse_settings(["--enforcement-disabled", "true", "--grpc-addr", "127.0.0.1:1"], env=env)
    assert s.failure_mode_allow is False and s.enforcement_disabled is True
    assert s.redis.cluster_nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert s.max_request_bytes == 1024 and s.grpc_addr == "127.0.0.1:1"


def test_failure_mode_setting() -> None:
    from mimir_edge.rls.enforcer import FailureMode

    assert parse_settings([], env={}).failure_mode is FailureMode.ALLOW
    assert parse_settings([], env={"FAILURE_MODE_ALLOW": "false"}).failure_mode is FailureMode.DENY
    local = parse_settings(["--failure-mode", "local"], env={"FAILURE_MODE_ALLOW": "false", "REPLICAS_HINT": "4"})
    assert local.failure_mode is FailureMode.LOCAL and local.replicas_hint == 4
    assert local.local_max_tenants == 100_000
    assert parse_settings([], env={"LOCAL_MAX_TENANTS": "5000"}).local_max_tenants == 5000


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--max-request-bytes", "0"], {}, "must be positive"),
        ([], {"FAILURE_MODE_ALLOW": "maybe"}, "FAILURE_MODE_ALLOW"),
        (["--grpc-addr", "nope"], {}, "not host:port"),
        ([], {"REDIS_CLUSTER_NODES": "a:1,b"}, "not host:port"),
        ([], {"LOCAL_MAX_TENANTS": "0"}, "--local-max-tenants must be at least 1"),
    ],
)
def test_rls_invalid_settings_exit_with_a_clear_error(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_settings(argv, env=env)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_validate_overrides_cli_prints_effective_limits() -> None:
    out = subprocess.run(
        [script_path("mimir-edge"), "validate-overrides", str(ROOT / "examples" / "overrides.yaml")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert '"noisy"' in out.stdout and '"ingestion_burst_factor": 2.0' in out.stdout


def test_validate_overrides_cli_rejects_a_broken_file() -> None:
    out = subprocess.run(
        [
            script_path("mimir-edge"),
            "validate-overrides",
            str(ROOT / "tests" / "fixtures" / "overrides" / "invalid_negative.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 1 and "tenant 'tenant-c', field 'request_burst_size'" in out.stderr
