"""One `host:port` parser for every address the programs take."""

from __future__ import annotations

import pytest
from mimir_edge.address import parse_host_port
from mimir_edge.rls.settings import parse_settings
from mimir_edge.store.client import RedisConfig
from mimir_edge.sync.main import main as sync_main


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8081", ("127.0.0.1", 8081)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        (" rls-1:8083 ", ("rls-1", 8083)),
        ("mimir-envoy.ns.svc.cluster.local:8080", ("mimir-envoy.ns.svc.cluster.local", 8080)),
        ("[::1]:80", ("::1", 80)),
        ("[::]:65535", ("::", 65535)),
    ],
)
def test_addresses_that_parse(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("localhost", "is not host:port"),
        (":8081", "is not host:port"),
        ("", "is not host:port"),
        ("host:", "port must be a number"),
        ("host:http", "port must be a number"),
        ("host:-1", "port must be a number"),
        ("host:65536", "port must be a number"),
        ("host:٣", "port must be a number"),  # a digit to str.isdigit, not to a socket
        ("::1:80", "needs brackets"),
        ("[::1:80", "unbalanced brackets"),
        ("::1]:80", "unbalanced brackets"),
        ("[]:80", "unbalanced brackets"),
        ("[::1]]:80", "unbalanced brackets"),
    ],
)
def test_addresses_that_do_not_parse_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_host_port(text)


def test_cluster_nodes_use_the_same_parser() -> None:
    assert RedisConfig.parse_cluster_nodes("[::1]:7000, b:7001") == (("::1", 7000), ("b", 7001))
    with pytest.raises(ValueError, match=r"cluster node 'b:x': port must be a number"):
        RedisConfig.parse_cluster_nodes("a:7000,b:x")


def test_rls_rejects_a_bad_address_at_startup(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings([], env={"ADMIN_ADDR": "0.0.0.0:99999"})
    assert exited.value.code == 2
    assert "--admin-addr: '0.0.0.0:99999': port must be a number" in capsys.readouterr().err


def test_overrides_sync_rejects_a_bad_http_addr_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    # It used to start, connect to Redis and then die with a traceback from int('nope').
    with pytest.raises(SystemExit) as exited:
        sync_main(["--source", "file", "--path", "/dev/null", "--http-addr", "nope"])
    assert exited.value.code == 2
    assert "--http-addr: 'nope' is not host:port" in capsys.readouterr().err
