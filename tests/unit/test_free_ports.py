"""The port helpers never hand out the demo's default ports (`make demo` runs `mimir-edge up` on
DEFAULT_PORTS while servers other tests started may still be running)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from mimir_edge.localstack import processes
from mimir_edge.localstack.processes import DEFAULT_PORTS, free_port, free_port_block, free_port_pair


def _draws(monkeypatch: pytest.MonkeyPatch, *ports: int) -> list[int]:
    """random.randrange returns `ports` in order; the list records what was drawn."""
    drawn: list[int] = []
    sequence: Iterator[int] = iter(ports)

    def randrange(low: int, high: int) -> int:
        port = next(sequence)
        assert low <= port < high, (low, port, high)
        drawn.append(port)
        return port

    monkeypatch.setattr(processes.random, "randrange", randrange)
    monkeypatch.setattr(processes, "_handed_out", set())
    return drawn


def _unused_port_outside_default_block() -> int:
    """A port that is bindable now, found without the helpers under test."""
    for port in range(25000, 26000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no bindable port in 25000-25999")


def test_free_port_skips_the_demo_block(monkeypatch: pytest.MonkeyPatch) -> None:
    outside = _unused_port_outside_default_block()
    drawn = _draws(monkeypatch, DEFAULT_PORTS.start, DEFAULT_PORTS.start + 32, DEFAULT_PORTS.stop - 1, outside)
    assert free_port() == outside
    assert len(drawn) == 4


def test_free_port_pair_skips_a_partner_in_the_demo_block(monkeypatch: pytest.MonkeyPatch) -> None:
    offset = 20
    outside = _unused_port_outside_default_block()
    # 17990 is outside the block but its partner 18010 is in it.
    drawn = _draws(monkeypatch, DEFAULT_PORTS.start - offset + 10, outside, outside, outside)
    port = free_port_pair(offset)
    assert port not in DEFAULT_PORTS and port + offset not in DEFAULT_PORTS
    assert drawn[0] == DEFAULT_PORTS.start - offset + 10 and port != drawn[0]


def test_free_port_block_never_overlaps_the_demo_block(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = _draws(monkeypatch, DEFAULT_PORTS.start + 7, DEFAULT_PORTS.start - 100, 30000)
    base = free_port_block(150)
    assert base == 30000
    assert not set(range(base, base + 150)) & set(DEFAULT_PORTS)
    assert len(drawn) == 3


def test_the_default_base_is_the_cli_default() -> None:
    from mimir_edge.cli import build_parser

    args = build_parser().parse_args(["up"])
    assert range(args.port_base, args.port_base + processes.PORT_SPAN) == DEFAULT_PORTS
