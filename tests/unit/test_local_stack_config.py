"""`mimir-edge up`'s wiring, without starting it: Envoy asks every replica over HTTP, on ports of
the stack's block, and fails open exactly when the replicas do."""

from __future__ import annotations

from pathlib import Path

import pytest
from mimir_edge.deploy.envoy import render
from mimir_edge.localstack.processes import PORT_SPAN
from mimir_edge.localstack.up import MAX_REPLICAS, LocalStack, Ports, UpOptions
from mimir_edge.rls.settings import parse_settings


@pytest.mark.parametrize("allow", [True, False])
def test_envoy_and_the_replicas_share_one_failure_mode(tmp_path: Path, allow: bool) -> None:
    stack = LocalStack(UpOptions(state_dir=tmp_path, failure_mode_allow=allow), say=lambda _: None)
    settings = parse_settings([], env=stack.rls_env("redis://127.0.0.1:6379/0"))
    options = stack.envoy_options()
    assert settings.failure_mode_allow is options.failure_mode_allow is allow
    hcm = render(options)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["http_filters"][0]["typed_config"]["failure_mode_allow"] is allow


def test_envoy_asks_each_replica_over_http_on_the_stacks_ports(tmp_path: Path) -> None:
    stack = LocalStack(UpOptions(state_dir=tmp_path, replicas=3, port_base=21000), say=lambda _: None)
    options = stack.envoy_options()
    assert options.authz_transport == "http"
    assert options.rls == tuple(("127.0.0.1", stack.ports.rls_authz_http(i)) for i in range(3))


def test_every_port_is_distinct_and_inside_the_block() -> None:
    ports = Ports(30000, MAX_REPLICAS).all(with_nginx=True)
    assert len(set(ports.values())) == len(ports)
    assert all(30000 <= p < 30000 + PORT_SPAN for p in ports.values())
