"""Envoy's ext_authz filter over HTTP/1.1 (`http_service`): the same decision as the gRPC Check,
on a lean asyncio server.

Why a second transport: grpcio's Python server costs about 0.5 ms of CPU per call here whatever
the handler does (its poller thread and completion queue hand every event across threads); this
server costs under 0.1 ms. Envoy sends the original method and path under CHECK_PREFIX, the
allowed headers and the buffered body; 200 admits (our headers go upstream), any other status
is the client's answer. The rate limit filter has no HTTP transport, so `charge=ratelimit` stays
on gRPC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from mimir_edge.contract import CHECK_PREFIX, HEALTH_PATH
from mimir_edge.rls.enforcer import CheckResult, Enforcer, protocol_for_path
from mimir_edge.rls.http_wire import Request, RequestParser, WireError, encode_response
from mimir_edge.rls.metrics import RlsMetrics

log = structlog.get_logger("rls")

#: Room for the request line and headers around a body of MAX_REQUEST_BYTES.
HEAD_ROOM_BYTES = 64 * 1024
_TEXT = [("content-type", "text/plain; charset=utf-8")]


def check_answer(result: CheckResult) -> tuple[int, list[tuple[str, str]], bytes]:
    """The one place a CheckResult becomes the HTTP service's answer."""
    verdict, headers = result.verdict, result.headers()
    if verdict.admitted:
        return 200, headers, b""
    return verdict.http_status, headers, result.body()


class HttpAuthzServer:
    """Serves checks on the running event loop; `serving()` drives the health answer."""

    def __init__(self, enforcer: Enforcer, metrics: RlsMetrics, *, max_body_bytes: int, serving: Callable[[], bool]):
        self._enforcer = enforcer
        self._metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._serving = serving
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set by stop(): every answer closes its connection, idle connections are closed.
        self.draining = False

    async def start(self, host: str, port: int) -> None:
        # Kept: asyncio.get_running_loop() makes a getpid() system call on every use.
        self._loop = loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=1024, reuse_address=True)

    async def stop(self, grace_s: float) -> None:
        """Stop accepting; close idle connections; answer the checks in flight with `Connection:
        close` (up to `grace_s`); then close what is left. A check is never charged and cut off."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close_if_idle()
        deadline = time.monotonic() + grace_s
        while self._tasks and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left)
        for connection in list(self.connections):
            connection.close()

    def serve(self, connection: _Connection, request: Request) -> None:
        if request.path.startswith(CHECK_PREFIX):
            assert self._loop is not None  # a connection means start() ran
            task = self._loop.create_task(self._check(connection, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if request.path == HEALTH_PATH and request.method in ("GET", "HEAD"):
            status, body = (200, b"SERVING\n") if self._serving() else (503, b"NOT_SERVING\n")
        else:
            status, body = 404, f"no such path; checks go to {CHECK_PREFIX}/...\n".encode()
        connection.answer(request, status, _TEXT, body)

    async def _check(self, connection: _Connection, request: Request) -> None:
        started = time.perf_counter()
        # Envoy sends the original path under CHECK_PREFIX: /ext_authz/otlp/v1/metrics.
        path = request.path[len(CHECK_PREFIX) :]
        try:
            result = await self._enforcer.check(request.headers, request.body, path=path)
        except Exception as exc:
            result = self._enforcer.internal_error(exc, protocol_for_path(path))
        status, headers, body = check_answer(result)
        connection.answer(request, status, headers, body)
        self._metrics.check_seconds.observe(time.perf_counter() - started)


class _Connection(asyncio.Protocol):
    """One keep-alive connection from Envoy: one request at a time, answered in order."""

    def __init__(self, server: HttpAuthzServer):
        self._server = server
        self._parser = RequestParser(server.max_body_bytes + HEAD_ROOM_BYTES)
        self._transport: asyncio.Transport | None = None
        #: A request is being decided; the next waits in the parser.
        self._busy = False
        #: Inside _next()'s loop: an answer given synchronously must not start another loop.
        self._dispatching = False
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = transport  # type: ignore[assignment]
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        if not self._busy:
            self._next()
        elif self._parser.buffered > self._server.max_body_bytes + HEAD_ROOM_BYTES and self._transport is not None:
            # Pipelined requests pile up behind the one being decided: stop reading until it is answered.
            self._transport.pause_reading()
            self._paused = True

    def _next(self) -> None:
        """Serve the buffered requests, one at a time, until one waits for its decision."""
        self._dispatching = True
        try:
            while not self._busy and self._transport is not None and not self._transport.is_closing():
                try:
                    request = self._parser.next_request()
                except WireError as exc:
                    log.warning("bad ext_authz HTTP request", status=exc.status, error=str(exc))
                    self._write(encode_response(exc.status, _TEXT, f"{exc}\n".encode(), keep_alive=False), False)
                    return
                if request is None:
                    return
                self._busy = True
                self._server.serve(self, request)
        finally:
            self._dispatching = False

    def answer(self, request: Request, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._busy = False
        keep_alive = request.keep_alive and not self._server.draining
        response = encode_response(status, headers, body, keep_alive=keep_alive, head=request.method == "HEAD")
        if not self._write(response, keep_alive):
            return
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        if not self._dispatching:
            self._next()

    def _write(self, response: bytes, keep_alive: bool) -> bool:
        """Send; False when the connection is gone or now closing."""
        transport = self._transport
        if transport is None or transport.is_closing():  # Envoy gave up (timeout) and closed
            return False
        transport.write(response)
        if not keep_alive:
            transport.close()
            return False
        return True

    def close_if_idle(self) -> None:
        if not self._busy:
            self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
