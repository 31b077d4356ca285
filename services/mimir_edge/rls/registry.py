"""Live RLS replicas, registered in Redis by a heartbeat: how local mode divides limits, and
what the admin API lists."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

import structlog

from mimir_edge import __version__
from mimir_edge.core.errors import StoreUnavailable
from mimir_edge.core.schema import LIVE_FOR_S, REPLICAS_KEY, replica_key
from mimir_edge.store.client import Redis, translated_errors

log = structlog.get_logger("rls.registry")


class ReplicaRegistry:
    def __init__(
        self, redis: Redis, *, details: Callable[[], dict[str, str]], hint: int = 0, replica_id: str | None = None
    ):
        self._redis = redis
        self._details = details
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        #: What to assume before the registry was ever read (REPLICAS_HINT), else 1.
        self.live = max(1, hint)

    async def beat(self) -> None:
        now_ms = int(time.time() * 1000)
        fields = {"id": self.replica_id, "version": __version__, "heartbeat_ms": str(now_ms), **self._details()}
        async with translated_errors("replica heartbeat"), asyncio.timeout(1.0):
            key = replica_key(self.replica_id)
            await self._redis.hset(key, mapping=fields)  # type: ignore[arg-type]
            await self._redis.pexpire(key, int(LIVE_FOR_S * 1000))
            await self._redis.zadd(REPLICAS_KEY, {self.replica_id: now_ms})
            await self._redis.zremrangebyscore(REPLICAS_KEY, "-inf", now_ms - int(LIVE_FOR_S * 1000) * 6)
            live = await self._redis.zcount(REPLICAS_KEY, now_ms - int(LIVE_FOR_S * 1000), "+inf")
        self.live = max(1, int(live))

    async def run_once(self) -> None:
        # On failure keep the last known count: it is what local mode needs during the outage.
        with contextlib.suppress(StoreUnavailable):
            await self.beat()

    async def leave(self) -> None:
        try:
            async with translated_errors("replica leave"), asyncio.timeout(1.0):
                await self._redis.zrem(REPLICAS_KEY, self.replica_id)
                await self._redis.delete(replica_key(self.replica_id))
        except StoreUnavailable as exc:
            log.warning("could not deregister", error=str(exc))
