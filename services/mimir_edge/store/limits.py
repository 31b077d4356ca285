"""Tenant limits in Redis: written by overrides-sync, read by the RLS (defaults) and admin."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from mimir_edge.core.limits import MIMIR_DEFAULTS, TenantLimits
from mimir_edge.core.overrides import RuntimeOverrides
from mimir_edge.core.schema import (
    DEFAULTS_KEY,
    SYNC_STATUS_KEY,
    TENANTS_KEY,
    decode_limits,
    encode_limits,
    limits_key,
)
from mimir_edge.store.client import Redis, translated_errors


@dataclass(frozen=True, slots=True)
class SyncResult:
    written: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    defaults_changed: bool
    generation: int


class LimitsStore:
    def __init__(self, redis: Redis, *, timeout_s: float = 5.0):
        self._redis = redis
        self._timeout_s = timeout_s

    async def read_defaults(self) -> TenantLimits:
        """The defaults overrides-sync wrote, or Mimir's own when none were written yet."""
        async with translated_errors("HGETALL defaults"), asyncio.timeout(self._timeout_s):
            fields = await self._redis.hgetall(DEFAULTS_KEY)
        return decode_limits(fields) if fields else MIMIR_DEFAULTS

    async def read_tenants(self) -> dict[str, TenantLimits]:
        """Every tenant in the index with its stored limits."""
        async with translated_errors("read tenants"), asyncio.timeout(self._timeout_s):
            members = await self._redis.smembers(TENANTS_KEY)
            tenants = sorted(t.decode() if isinstance(t, bytes) else str(t) for t in members)
            pipe = self._redis.pipeline(transaction=False)
            for tenant in tenants:
                pipe.hgetall(limits_key(tenant))
            stored = await pipe.execute() if tenants else []
        return {t: decode_limits(f) for t, f in zip(tenants, stored, strict=True) if f}

    async def reconcile(self, desired: RuntimeOverrides) -> SyncResult:
        """Make Redis hold exactly `desired`, writing only what differs.

        Idempotent: two writers applying the same document leave the same state.
        """
        current = await self.read_tenants()
        current_defaults = await self.read_defaults()
        async with translated_errors("HGETALL defaults"), asyncio.timeout(self._timeout_s):
            has_defaults = bool(await self._redis.exists(DEFAULTS_KEY))

        written = tuple(t for t, lim in desired.tenants.items() if current.get(t) != lim)
        removed = tuple(t for t in current if t not in desired.tenants)
        defaults_changed = not has_defaults or current_defaults != desired.defaults

        async with translated_errors("write limits"), asyncio.timeout(self._timeout_s):
            pipe = self._redis.pipeline(transaction=False)
            if defaults_changed:
                pipe.hset(DEFAULTS_KEY, mapping=_hash(desired.defaults))
            for tenant in written:
                # No DEL first: every field is rewritten, and the script never sees a gap.
                pipe.hset(limits_key(tenant), mapping=_hash(desired.tenants[tenant]))
            if written:
                pipe.sadd(TENANTS_KEY, *written)
            for tenant in removed:
                pipe.delete(limits_key(tenant))
            if removed:
                pipe.srem(TENANTS_KEY, *removed)
            pipe.hincrby(SYNC_STATUS_KEY, "generation", 1)
            pipe.hset(
                SYNC_STATUS_KEY,
                mapping={"last_success_ms": int(time.time() * 1000), "tenants": len(desired.tenants)},
            )
            replies = await pipe.execute()
        generation = int(replies[-2])
        return SyncResult(
            written=written,
            removed=removed,
            unchanged=len(desired.tenants) - len(written),
            defaults_changed=defaults_changed,
            generation=generation,
        )


def _hash(limits: TenantLimits) -> dict[Any, Any]:
    # redis-py's mapping type is invariant in its keys; ours are plain str.
    return dict(encode_limits(limits))
