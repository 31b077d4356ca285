"""The denial log sampler: one line per key per interval, saying how many were skipped."""

from __future__ import annotations

from mimir_edge.logs import Sampler


def test_one_line_per_key_per_interval_with_the_skipped_count() -> None:
    sampler = Sampler(interval_s=10.0)
    assert sampler.admit("a", now=0.0) == 0
    assert [sampler.admit("a", now=t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert sampler.admit("b", now=5.0) == 0, "keys are independent"
    assert sampler.admit("a", now=10.0) == 3, "the next line says three were skipped"
    assert sampler.admit("a", now=10.5) is None


def test_keys_are_bounded() -> None:
    sampler = Sampler(interval_s=10.0, max_keys=100)
    for i in range(1000):
        assert sampler.admit(i, now=0.0) == 0
    assert len(sampler._last) <= 100
