"""A Redis that resets a connection in the middle of redis-py's handshake is a store failure.

redis-py writes its handshake as separate commands (HELLO, CLIENT MAINT_NOTIFICATIONS, CLIENT
SETINFO LIB-NAME, CLIENT SETINFO LIB-VER). When Redis is stopped between two of those writes, the
next write meets a closed transport: asyncio's loop raises ConnectionResetError, but uvloop (what
the RLS runs on) raises RuntimeError("unable to perform operation on <TCPTransport closed=True
...>; the handler is closed"), which redis-py lets through. Before the fix that RuntimeError
escaped the store, failed the RLS's heartbeat or limit-change subscription and ended the replica
with exit code 70 during a Redis outage.

A real redis-server cannot be stopped at that exact point, so a small RESP server here answers the
handshake and resets the connection (RST) when LIB-NAME arrives, and the client's LIB-VER write is
held back until the reset has landed.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio.connection
from mimir_edge.core.errors import StoreUnavailable
from mimir_edge.rls.registry import ReplicaRegistry
from mimir_edge.store.announcements import LimitChanges
from mimir_edge.store.client import RedisConfig, connect, translated_errors

pytestmark = pytest.mark.both_loops


class ResettingRedis:
    """Answers HELLO, PING and CLIENT MAINT_NOTIFICATIONS, and resets the connection at LIB-NAME."""

    def __init__(self) -> None:
        self.connections = 0
        self.resets = 0
        self.reset = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ResettingRedis:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while (command := await _read_command(reader)) is not None:
            name = b" ".join(command[:3]).upper()
            if name.startswith(b"CLIENT SETINFO LIB-NAME"):
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()  # closed with linger 0: an RST, as a killed Redis may send
                self.resets += 1
                self.reset.set()
                return
            if name.startswith(b"HELLO"):
                writer.write(b"%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
            elif name.startswith(b"PING"):
                writer.write(b"+PONG\r\n")
            else:
                writer.write(b"+OK\r\n")


async def _read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    header = await reader.readline()
    if not header:
        return None
    parts = []
    for _ in range(int(header[1:])):
        size = int((await reader.readline())[1:])
        parts.append((await reader.readexactly(size + 2))[:-2])
    return parts


@pytest.fixture
async def resetting_redis(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ResettingRedis]:
    async with ResettingRedis() as server:
        send = redis.asyncio.connection.AbstractConnection._send_packed_command

        async def after_the_reset(self: Any, command: Any) -> None:
            if any(b"LIB-VER" in bytes(part) for part in command):
                await asyncio.wait_for(server.reset.wait(), 30)
                await asyncio.sleep(0.05)  # the loop reads the RST and closes the transport
            await send(self, command)

        # raising=True (the default): a redis-py that renames this fails the test, not passes it.
        monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "_send_packed_command", after_the_reset)
        yield server


async def test_a_reset_during_the_handshake_is_store_unavailable(resetting_redis: ResettingRedis) -> None:
    client = connect(RedisConfig(url=resetting_redis.url, timeout_s=5.0))
    with pytest.raises(StoreUnavailable, match="redis PING failed"):
        async with translated_errors("PING"):
            await client.ping()
    await client.aclose()


async def test_the_heartbeat_reports_the_reset_as_store_unavailable(resetting_redis: ResettingRedis) -> None:
    client = connect(RedisConfig(url=resetting_redis.url, timeout_s=5.0))
    registry = ReplicaRegistry(client, details=dict)
    with pytest.raises(StoreUnavailable, match="replica heartbeat"):
        await registry.beat()
    await client.aclose()


async def test_the_limit_change_subscription_retries_after_the_reset(resetting_redis: ResettingRedis) -> None:
    changes = LimitChanges(RedisConfig(url=resetting_redis.url, timeout_s=5.0), retry_s=0.01, max_retry_s=0.02)

    async def on_change() -> None:
        raise AssertionError("never subscribed, so never called")

    follower = asyncio.create_task(changes.follow(on_change))
    async with asyncio.timeout(60):
        while resetting_redis.resets < 3 and not follower.done():
            await asyncio.sleep(0.01)
    assert not follower.done(), f"the subscription ended: {follower.exception()!r}"
    assert resetting_redis.connections >= 3
    assert not changes.subscribed
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
