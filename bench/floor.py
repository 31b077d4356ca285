"""The floor: a do-nothing authz server, for the same Envoy config to point at instead of the RLS.

It does the least any real ext_authz server must: read the body, make one Redis round trip
(`PING`), answer 200 / OK. Both transports in one process on one uvloop loop, as the RLS serves
them: the ext_authz HTTP service (with the `/healthz` Envoy's health check asks) and the gRPC
`envoy.service.auth.v3.Authorization/Check` (with gRPC health). "RLS added latency ÷ floor added
latency", measured in the same run, is what the enforcement itself costs above the unavoidable.

    python -m bench.floor --grpc-port P --http-port Q --redis-port R
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import grpc
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import code_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from mimir_edge.contract import HEALTH_PATH

HOST = "127.0.0.1"
_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
_HEALTHY = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nSERVING\n"
_GRPC_OK = authz.CheckResponse(status=status_pb2.Status(code=code_pb2.OK), ok_response=authz.OkHttpResponse())


class RedisPing:
    """One connection to Redis; `ping()` is one round trip. Pings are serialised by a lock:
    concurrent checks queue, as they would on one pipelined connection."""

    def __init__(self, port: int):
        self._port = port
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def ping(self) -> None:
        async with self._lock:
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(HOST, self._port)
            assert self._reader is not None
            self._writer.write(b"PING\r\n")
            reply = await self._reader.readline()
            if reply != b"+PONG\r\n":
                raise RuntimeError(f"Redis answered {reply!r} to PING")


class _HttpAuthz(asyncio.Protocol):
    """HTTP/1.1 keep-alive, Content-Length bodies, one request at a time (what Envoy sends)."""

    def __init__(self, redis: RedisPing):
        self._redis = redis
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._need: int | None = None  # bytes of head + body once the head is read
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._next()

    def _next(self) -> None:
        if self._busy:
            return
        if self._need is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self._buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self._need = end + 4 + length
        if len(self._buffer) < self._need:
            return
        request = bytes(self._buffer[: self._need])
        del self._buffer[: self._need]
        self._need = None
        self._busy = True
        if request.startswith(b"GET " + HEALTH_PATH.encode()):
            self._answer(_HEALTHY)
        else:
            asyncio.get_running_loop().create_task(self._check())

    async def _check(self) -> None:
        await self._redis.ping()
        self._answer(_OK)

    def _answer(self, response: bytes) -> None:
        self._busy = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(response)
            self._next()


class _GrpcAuthz(authz_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, redis: RedisPing):
        self._redis = redis

    async def Check(self, request: authz.CheckRequest, context: grpc.aio.ServicerContext) -> authz.CheckResponse:
        http = request.attributes.request.http
        if not (http.raw_body or http.body):
            raise RuntimeError("the floor must read a body: Envoy sent none (with_request_body missing?)")
        await self._redis.ping()
        return _GRPC_OK


async def serve(grpc_port: int, http_port: int, redis_port: int) -> None:
    redis = RedisPing(redis_port)
    await redis.ping()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.so_reuseport", 0)])
    authz_grpc.add_AuthorizationServicer_to_server(_GrpcAuthz(redis), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(f"{HOST}:{grpc_port}") == 0:
        raise SystemExit(f"cannot listen on {HOST}:{grpc_port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    loop = asyncio.get_running_loop()
    http = await loop.create_server(lambda: _HttpAuthz(redis), HOST, http_port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    http.close()
    await server.stop(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.grpc_port, args.http_port, args.redis_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
