"""The coalescer: alone a call flushes inline; concurrent calls share batches; errors reach callers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from mimir_edge.store.coalescer import Coalescer


class Recorder:
    def __init__(self, delay: float = 0.0, fail: Exception | None = None):
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail = fail

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise self.fail
        return [ValueError(f"odd {i}") if i == 13 else i * 10 for i in items]


async def test_a_lone_call_is_flushed_alone() -> None:
    flush = Recorder()
    coalescer: Coalescer[int, int] = Coalescer(flush)
    assert await coalescer.submit(1) == 10
    assert await coalescer.submit(2) == 20
    assert flush.batches == [[1], [2]]


async def test_concurrent_calls_share_batches_and_keep_their_results() -> None:
    flush = Recorder(delay=0.01)
    coalescer: Coalescer[int, int] = Coalescer(flush, max_in_flight=1, max_batch=50)
    items = range(100, 200)
    results = await asyncio.gather(*(coalescer.submit(i) for i in items))
    assert results == [i * 10 for i in items]
    assert len(flush.batches) <= 4
    assert sorted(i for b in flush.batches for i in b) == list(items)
    assert max(len(b) for b in flush.batches) == 50
    assert coalescer.calls == 100 and coalescer.batches == len(flush.batches)


async def test_a_per_item_error_reaches_only_its_caller() -> None:
    coalescer: Coalescer[int, int] = Coalescer(Recorder(delay=0.001))
    results = await asyncio.gather(*(coalescer.submit(i) for i in (12, 13, 14)), return_exceptions=True)
    assert results[0] == 120 and results[2] == 140
    assert isinstance(results[1], ValueError)


async def test_a_failed_flush_fails_every_caller_of_the_batch() -> None:
    coalescer: Coalescer[int, int] = Coalescer(Recorder(delay=0.001, fail=ConnectionError("down")))
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_a_cancelled_caller_does_not_break_the_batch() -> None:
    coalescer: Coalescer[int, int] = Coalescer(Recorder(delay=0.02), max_in_flight=1)
    first = asyncio.create_task(coalescer.submit(1))
    await asyncio.sleep(0)
    second = asyncio.create_task(coalescer.submit(2))
    third = asyncio.create_task(coalescer.submit(3))
    await asyncio.sleep(0)
    second.cancel()
    assert await first == 10 and await third == 30
    with pytest.raises(asyncio.CancelledError):
        await second
    await coalescer.close()
