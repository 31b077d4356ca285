"""Coalescing concurrent calls into batches: under load, one Redis round trip serves many."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence["R | BaseException"]]]


class Coalescer(Generic[T, R]):
    """Up to `max_in_flight` flushes at a time, each taking everything queued (up to `max_batch`).

    With no load a call flushes itself, inline, alone: no task, no added wait. Under load, calls
    that arrive while all flushes are busy queue and leave together in the next one.
    """

    def __init__(self, flush: Flush[T, R], *, max_batch: int = 256, max_in_flight: int = 4):
        self._flush = flush
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._drainers: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.calls = 0

    async def submit(self, item: T) -> R:
        if self._in_flight == 0 and not self._pending:
            # Idle: flush this call inline.
            self._in_flight += 1
            self.batches += 1
            self.calls += 1
            try:
                result = (await self._flush([item]))[0]
            finally:
                self._in_flight -= 1
                self._start_drainer()
            if isinstance(result, BaseException):
                raise result
            return result
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._start_drainer()
        return await future

    def _start_drainer(self) -> None:
        if self._pending and self._in_flight < self._max_in_flight:
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._drainers.add(task)
            task.add_done_callback(self._drainers.discard)

    async def _drain(self) -> None:
        try:
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
                except BaseException:  # cancelled: do not leave callers waiting forever
                    for _, future in batch:
                        future.cancel()
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the caller gave up (cancelled)
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._in_flight -= 1

    async def close(self) -> None:
        """Wait for queued calls to be flushed."""
        while self._drainers:
            await asyncio.gather(*self._drainers, return_exceptions=True)
