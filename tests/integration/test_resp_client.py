"""The lean pipelining client against a real redis-server: replies in order, errors, AUTH and
db from the URL, connection loss and reconnection, timeouts of a Redis that stops answering."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from pathlib import Path

import pytest
import redis as sync_redis
from mimir_edge.localstack.processes import free_port
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.store.resp import RespAddress, RespClient, RespError

from tests.waiting import wait_for_async

# Every test on both loops: the RLS runs on uvloop, whose transports differ from asyncio's.
pytestmark = pytest.mark.both_loops


async def test_concurrent_calls_get_their_own_replies(redis_server: RedisServer) -> None:
    client = RespClient.from_url(redis_server.url)
    replies = await asyncio.gather(*(client.call("ECHO", f"m{i}") for i in range(500)))
    assert replies == [f"m{i}".encode() for i in range(500)]
    assert client.writes < 500  # calls of one loop turn leave in one write
    with pytest.raises(RespError, match="unknown command"):
        await client.call("NO-SUCH-COMMAND")
    assert await client.call("PING") == b"PONG"
    await client.close()


async def test_url_password_and_database(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "auth", extra_args=("--requirepass", "s3cret")).start()
    try:
        good = RespClient.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/3")
        assert await good.call("SET", "k", "v") == b"OK"
        check = sync_redis.Redis(host="127.0.0.1", port=server.port, password="s3cret", db=3)
        assert check.get("k") == b"v"
        check.close()
        await good.close()
        bad = RespClient.from_url(f"redis://:wrong@127.0.0.1:{server.port}/0")
        with pytest.raises(RespError):
            await bad.call("PING")
        await bad.close()
    finally:
        server.stop()


def test_address_from_url() -> None:
    a = RespAddress.from_url("rediss://user:p%40ss@redis.example:6380/2")
    assert (a.host, a.port, a.db, a.username, a.password, a.tls) == ("redis.example", 6380, 2, "user", "p@ss", True)
    with pytest.raises(ValueError, match="scheme"):
        RespAddress.from_url("http://127.0.0.1:6379")


async def test_connection_loss_fails_calls_then_reconnects(tmp_path: Path) -> None:
    port = free_port()
    server = RedisServer(tmp_path / "a", port=port).start()
    client = RespClient.from_url(f"redis://127.0.0.1:{port}/0", connect_timeout_s=1.0)
    try:
        assert await client.call("PING") == b"PONG"
        blocked = asyncio.ensure_future(client.call("BLPOP", "never", "0"))  # waits on the server
        # Killed once the server holds the call, so what is lost is a call in flight.
        watcher = RespClient.from_url(f"redis://127.0.0.1:{port}/0")

        async def blpop_blocked() -> bool:
            return b"blocked_clients:1\r\n" in await watcher.call("INFO", "clients")

        try:
            await wait_for_async(blpop_blocked, what="the BLPOP blocked on the server")
        finally:
            await watcher.close()
        server.kill()
        with pytest.raises(ConnectionError):
            await blocked
        with pytest.raises(OSError):  # refused while it is down
            await client.call("PING")
        server = RedisServer(tmp_path / "b", port=port).start()
        assert await client.call("PING") == b"PONG"
    finally:
        await client.close()
        server.stop()


async def test_calls_unanswered_in_time_fail_and_later_replies_keep_their_order(tmp_path: Path) -> None:
    """A Redis that holds the connection but does not answer (stopped with SIGSTOP): each call fails
    with TimeoutError at its own deadline; once Redis answers again, the stale replies are read off
    and dropped and every new call gets its own reply."""
    server = RedisServer(tmp_path / "stopped").start()
    assert server.process is not None
    pid = server.process.pid
    client = RespClient.from_url(server.url)
    try:
        assert await client.call("PING", timeout_s=1.0) == b"PONG"
        os.kill(pid, signal.SIGSTOP)
        # Deadlines far apart (0.5 s, then 3 s), so "each at its own deadline" is told by order
        # and by lower bounds, which a loaded host cannot break: a timer never fires early.
        first_started = time.perf_counter()
        first = asyncio.ensure_future(client.call("ECHO", "stale-1", timeout_s=0.5))
        await asyncio.sleep(0)  # the first call is written before the second
        second_started = time.perf_counter()
        second = asyncio.ensure_future(client.call("ECHO", "stale-2", timeout_s=3.0))
        with pytest.raises(TimeoutError):
            await first
        first_took = time.perf_counter() - first_started
        assert not second.done(), "the second call must not fail at the first one's deadline"
        with pytest.raises(TimeoutError):
            await second
        second_took = time.perf_counter() - second_started
        # 10 ms for the timers' granularity (uvloop's are whole milliseconds); 10 s: not much late.
        assert first_took >= 0.49 and 2.99 <= second_took < 10, (first_took, second_took)
        os.kill(pid, signal.SIGCONT)
        replies = await asyncio.gather(*(client.call("ECHO", f"fresh-{i}", timeout_s=2.0) for i in range(20)))
        assert replies == [f"fresh-{i}".encode() for i in range(20)]
    finally:
        os.kill(pid, signal.SIGCONT)
        await client.close()
        server.stop()


async def test_a_connection_attempt_nobody_waits_for_any_more_fails_quietly(tmp_path: Path) -> None:
    """A caller that gives up (its timeout, a cancelled request) while the connection is being
    made leaves the attempt running; when it then fails (Redis goes away), asyncio must not report
    a task "exception was never retrieved" (a traceback on stderr per attempt during an outage)."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    server = RedisServer(tmp_path / "stopped", extra_args=("--requirepass", "s3cret")).start()
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
    client = RespClient.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/0", connect_timeout_s=30.0)
    try:
        caller = asyncio.ensure_future(client.call("PING"))
        await asyncio.sleep(0)  # the attempt has started
        attempt = client._connecting
        assert attempt is not None and not attempt.done()
        caller.cancel()  # the caller gives up...
        with pytest.raises(asyncio.CancelledError):
            await caller
        server.kill()  # ...then Redis goes away under the AUTH handshake
        await asyncio.wait([attempt], timeout=30)
        assert attempt.done() and not attempt.cancelled()  # failed (not asked how: that retrieves it)
    finally:
        server.kill()
        await client.close()
    # The report comes when the failed task is collected.
    del attempt, caller, client
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert [c["message"] for c in reported] == []
