"""A circuit breaker around Redis: after consecutive failures, stop asking a Redis that is not
there (decisions take the failure path at once, no timeout per request) and let one background
probe find out when it is back."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

log = structlog.get_logger("store.breaker")


class BreakerState(enum.IntEnum):
    CLOSED = 0
    OPEN = 1


class CircuitBreaker:
    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        *,
        failure_threshold: int = 3,
        probe_initial_s: float = 0.05,
        probe_max_s: float = 1.0,
        on_change: Callable[[BreakerState], None] = lambda state: None,
    ):
        self._probe = probe
        self._failure_threshold = failure_threshold
        self._probe_initial_s = probe_initial_s
        self._probe_max_s = probe_max_s
        self._on_change = on_change
        self._failures = 0
        self.state = BreakerState.CLOSED
        self._prober: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self.state is BreakerState.OPEN

    def success(self) -> None:
        self._failures = 0

    def failure(self, error: BaseException) -> None:
        self._failures += 1
        if self.state is BreakerState.CLOSED and self._failures >= self._failure_threshold:
            self._set(BreakerState.OPEN, error=str(error))
            self._prober = asyncio.get_running_loop().create_task(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        await asyncio.sleep(self._probe_initial_s)
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(initial=self._probe_initial_s, max=self._probe_max_s),
            retry=retry_if_exception_type(Exception),  # still down: keep the breaker open
        )
        async for attempt in retrying:
            with attempt:
                await self._probe()
        self._failures = 0
        self._set(BreakerState.CLOSED, probes=retrying.statistics.get("attempt_number"))

    def _set(self, state: BreakerState, **context: object) -> None:
        self.state = state
        log.warning("redis circuit breaker " + state.name.lower(), **context)
        self._on_change(state)

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
