"""The port helpers never hand out the demo's default ports (`make demo` runs `mimir-edge up` on
DEFAULT_PORTS while servers other tests started may still be running)."""

from __future__ import annotations

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


def _bindable_block(count: int) -> int:
    """A base B (a multiple of 100, outside the demo block) with B .. B+count-1 bindable now,
    found without the helpers under test: other processes' servers may hold any fixed port."""
    for base in range(20000, processes.PORTS_HIGH - count, 100):
        if all(processes._bindable("127.0.0.1", port) for port in range(base, base + count)):
            return base
    raise AssertionError(f"no {count} bindable ports in a row from 20000")


def test_free_port_skips_the_demo_block(monkeypatch: pytest.MonkeyPatch) -> None:
    outside = _bindable_block(1)
    drawn = _draws(monkeypatch, DEFAULT_PORTS.start, DEFAULT_PORTS.start + 32, DEFAULT_PORTS.stop - 1, outside)
    assert free_port() == outside
    assert len(drawn) == 4


def test_free_port_pair_skips_a_partner_in_the_demo_block(monkeypatch: pytest.MonkeyPatch) -> None:
    offset = 20
    outside = _bindable_block(offset + 1)  # it and its partner are free
    # 17990 is outside the block but its partner 18010 is in it.
    drawn = _draws(monkeypatch, DEFAULT_PORTS.start - offset + 10, outside)
    assert free_port_pair(offset) == outside
    assert drawn == [DEFAULT_PORTS.start - offset + 10, outside]


def test_free_port_block_never_overlaps_the_demo_block(monkeypatch: pytest.MonkeyPatch) -> None:
    free = _bindable_block(150)
    drawn = _draws(monkeypatch, DEFAULT_PORTS.start + 7, DEFAULT_PORTS.start - 100, free)
    base = free_port_block(150)
    assert base == free
    assert not set(range(base, base + 150)) & set(DEFAULT_PORTS)
    assert len(drawn) == 3


def test_the_default_base_is_the_cli_default() -> None:
    from mimir_edge.cli import build_parser

    args = build_parser().parse_args(["up"])
    assert range(args.port_base, args.port_base + processes.PORT_SPAN) == DEFAULT_PORTS
