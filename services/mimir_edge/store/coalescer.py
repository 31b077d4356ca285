"""Coalescing concurrent calls into batches: under load, one Redis round trip serves many."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence["R | BaseException"]]]


class Coalescer(Generic[T, R]):
    """Queue calls; up to `max_in_flight` flushers each take what is queued, up to `max_batch`.

    With no load every call is flushed on the next loop turn alone (no added wait); under load
    calls queue while flushes are in flight and leave together in the next one.
    """

    def __init__(self, flush: Flush[T, R], *, max_batch: int = 256, max_in_flight: int = 4):
        self._flush = flush
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.calls = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._flushers) < self._max_in_flight:
            task = loop.create_task(self._drain())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self.batches += 1
            self.calls += len(batch)
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:  # every caller of the batch gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # the caller gave up (cancelled)
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def close(self) -> None:
        """Wait for queued calls to be flushed."""
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)
