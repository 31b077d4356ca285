"""A lean pipelining Redis client for the decision hot path (standalone Redis only).

One connection; every call is written at once and answered in order (RESP replies are FIFO),
so concurrent decisions share round trips without waiting to be batched, and there is no pool,
retry wrapper or per-call object beyond one future. Writes made in one event loop turn leave in
one send. redis-py stays in charge of everything else (Cluster, sync, admin).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis


class RespError(Exception):
    """An error reply from Redis (e.g. NOSCRIPT, a script error)."""


@dataclass(frozen=True, slots=True)
class RespAddress:
    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> RespAddress:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme {parsed.scheme!r} (redis:// or rediss://)")
        path = parsed.path.lstrip("/")
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 6379,
            db=int(path) if path else 0,
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            tls=parsed.scheme == "rediss",
        )


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        # Kept: asyncio.get_running_loop() makes a getpid() system call on every use.
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader()
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        #: Heap of (deadline, sequence, future) of the calls with a timeout; one timer, at the
        #: earliest deadline, serves them all.
        self._deadlines: list[tuple[float, int, asyncio.Future[Any]]] = []
        self._sequence = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self.writes = 0
        self.closed = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]

    def send(self, packed: bytes, timeout_s: float | None = None) -> asyncio.Future[Any]:
        """The future of this command's reply; it fails with TimeoutError after `timeout_s`."""
        loop = self._loop
        future: asyncio.Future[Any] = loop.create_future()
        self.waiters.append(future)
        if timeout_s is not None:
            deadline = loop.time() + timeout_s
            heapq.heappush(self._deadlines, (deadline, next(self._sequence), future))
            if self._timer is None or deadline < self._timer_at:
                self._arm(deadline)
        if not self._out:
            loop.call_soon(self._flush)
        self._out.append(packed)
        return future

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._expire)
        self._timer_at = deadline

    def _expire(self) -> None:
        """Fail the calls past their deadline. Their replies, if they come, are still read off in
        order and dropped; no per-call timer is made on the hot path. Under steady load this runs
        about once per timeout and only drops answered entries; each costs O(log n) once."""
        self._timer = None
        now = self._loop.time()
        heap = self._deadlines
        while heap:
            deadline, _, future = heap[0]
            if not future.done():
                if deadline > now:
                    self._arm(deadline)
                    return
                future.set_exception(TimeoutError("no reply from Redis in time"))
            heapq.heappop(heap)

    def _flush(self) -> None:
        if self.transport is not None and self._out:
            self.transport.write(b"".join(self._out))
            self.writes += 1
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            future = self.waiters.popleft()
            if future.done():  # the caller timed out or was cancelled
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(RespError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadlines.clear()
        error = ConnectionError(f"redis connection lost: {exc or 'closed by server'}")
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(error)
        self._out.clear()
        if not self.closed.done():
            self.closed.set_result(None)


class RespClient:
    """`await client.call("EVALSHA", ..., timeout_s=0.25)`: the reply, or RespError /
    ConnectionError / OSError / TimeoutError."""

    def __init__(self, address: RespAddress, *, connect_timeout_s: float = 0.25):
        self._address = address
        self._connect_timeout_s = connect_timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._past_writes = 0

    @property
    def writes(self) -> int:
        """Socket writes so far: each carries every call made in one event loop turn."""
        return self._past_writes + (self._protocol.writes if self._protocol else 0)

    @classmethod
    def from_url(cls, url: str, *, connect_timeout_s: float = 0.25) -> RespClient:
        return cls(RespAddress.from_url(url), connect_timeout_s=connect_timeout_s)

    async def call(self, *args: str | int | float | bytes, timeout_s: float | None = None) -> Any:
        """The reply; TimeoutError when none came within `timeout_s`, connecting included."""
        protocol = self._protocol
        if protocol is None or protocol.closed.done():
            if timeout_s is None:
                protocol = await self._connect()
            else:  # rare: the first call, or after the connection was lost
                started = time.monotonic()
                async with asyncio.timeout(timeout_s):
                    protocol = await self._connect()
                timeout_s = max(0.0, timeout_s - (time.monotonic() - started))
        return await protocol.send(hiredis.pack_command(args), timeout_s)  # type: ignore[arg-type]

    async def _connect(self) -> _Protocol:
        # One connection attempt at a time; concurrent callers wait for the same one.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open())
            # Callers that gave up (timed out, cancelled) no longer wait for this attempt; its
            # failure is theirs to see, not asyncio's "exception was never retrieved" at GC.
            self._connecting.add_done_callback(_retrieve)
        task = self._connecting
        return await asyncio.shield(task)

    async def _open(self) -> _Protocol:
        a = self._address
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if a.tls else None
        async with asyncio.timeout(self._connect_timeout_s):
            _, protocol = await loop.create_connection(_Protocol, a.host, a.port, ssl=context)
        try:
            if a.password is not None:
                auth = ("AUTH", a.username, a.password) if a.username else ("AUTH", a.password)
                await self._handshake(protocol, auth)
            if a.db:
                await self._handshake(protocol, ("SELECT", a.db))
        except BaseException:
            if protocol.transport is not None:
                protocol.transport.close()
                # The socket is closed when the loop next runs connection_lost: wait for it, or a
                # refused AUTH leaves it open until the garbage collector finds it.
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(protocol.closed), self._connect_timeout_s)
            raise
        if self._protocol is not None:
            self._past_writes += self._protocol.writes
        self._protocol = protocol
        return protocol

    async def _handshake(self, protocol: _Protocol, args: tuple[Any, ...]) -> None:
        async with asyncio.timeout(self._connect_timeout_s):
            await protocol.send(hiredis.pack_command(args))

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        protocol = self._protocol
        self._protocol = None
        if protocol is not None:
            self._past_writes += protocol.writes
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            await protocol.closed


def _retrieve(task: asyncio.Task[_Protocol]) -> None:
    if not task.cancelled():
        task.exception()
