"""Tenant limits in Redis: written by overrides-sync, read by the RLS (defaults) and admin.

Reconciling is two steps, so a caller can look before it writes (dry run, mass-delete guard):
`plan` reads what Redis holds and computes the difference; `apply` writes only that difference.
Writes are idempotent: two writers applying the same document leave the same state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mimir_edge.core.limits import MIMIR_DEFAULTS, TenantLimits
from mimir_edge.core.overrides import RuntimeOverrides
from mimir_edge.core.schema import (
    DEFAULTS_KEY,
    LIMITS_CHANNEL,
    SYNC_STATUS_KEY,
    TENANTS_KEY,
    decode_limits,
    encode_limits,
    limits_key,
)
from mimir_edge.store.client import Redis, SyncRedis, as_text, translated_errors


@dataclass(frozen=True, slots=True)
class SyncPlan:
    desired: RuntimeOverrides
    current: Mapping[str, TenantLimits]
    current_defaults: TenantLimits | None
    written: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def defaults_changed(self) -> bool:
        return self.current_defaults != self.desired.defaults

    @property
    def empty(self) -> bool:
        return not (self.written or self.removed or self.defaults_changed)

    def removed_fraction(self) -> float:
        return len(self.removed) / len(self.current) if self.current else 0.0


@dataclass(frozen=True, slots=True)
class AppliedState:
    """What one writer last put in Redis, and the generation that write produced."""

    generation: int
    tenants: Mapping[str, TenantLimits]
    defaults: TenantLimits


@dataclass(frozen=True, slots=True)
class SyncResult:
    written: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    defaults_changed: bool
    generation: int
    #: Redis commands sent to change limits (the status write is not counted).
    writes: int
    state: AppliedState


class LimitsStore:
    def __init__(self, redis: Redis, *, timeout_s: float = 5.0):
        self._redis = redis
        self._timeout_s = timeout_s

    async def read_defaults(self) -> TenantLimits:
        """The defaults overrides-sync wrote, or Mimir's own when none were written yet."""
        return await self._read_defaults() or MIMIR_DEFAULTS

    async def _read_defaults(self) -> TenantLimits | None:
        async with translated_errors("HGETALL defaults"), asyncio.timeout(self._timeout_s):
            fields = await self._redis.hgetall(DEFAULTS_KEY)
        return decode_limits(fields) if fields else None

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

    async def read_status(self) -> dict[str, str]:
        async with translated_errors("HGETALL sync status"), asyncio.timeout(self._timeout_s):
            fields = await self._redis.hgetall(SYNC_STATUS_KEY)
        return {as_text(k): as_text(v) for k, v in fields.items()}

    async def generation(self) -> int:
        async with translated_errors("HGET generation"), asyncio.timeout(self._timeout_s):
            value = await self._redis.hget(SYNC_STATUS_KEY, "generation")
        return int(value or 0)

    async def plan(self, desired: RuntimeOverrides, *, known: AppliedState | None = None) -> SyncPlan:
        """The difference between `desired` and Redis. With `known` (what this writer applied
        last) and an unchanged generation, nobody else wrote since: skip reading every tenant."""
        current_defaults: TenantLimits | None
        if known is not None and await self.generation() == known.generation:
            current, current_defaults = dict(known.tenants), known.defaults
        else:
            current = await self.read_tenants()
            current_defaults = await self._read_defaults()
        return SyncPlan(
            desired=desired,
            current=current,
            current_defaults=current_defaults,
            written=tuple(t for t, lim in desired.tenants.items() if current.get(t) != lim),
            removed=tuple(t for t in current if t not in desired.tenants),
        )

    async def apply(self, plan: SyncPlan, *, source: str = "") -> SyncResult:
        """Write the plan's difference, bump the generation and record the success."""
        desired = plan.desired
        writes = 0
        async with translated_errors("write limits"), asyncio.timeout(self._timeout_s):
            pipe = self._redis.pipeline(transaction=False)
            if plan.defaults_changed:
                pipe.hset(DEFAULTS_KEY, mapping=_hash(desired.defaults))
                writes += 1
            for tenant in plan.written:
                # No DEL first: every field is rewritten, and the script never sees a gap.
                pipe.hset(limits_key(tenant), mapping=_hash(desired.tenants[tenant]))
                writes += 1
            if plan.written:
                pipe.sadd(TENANTS_KEY, *plan.written)
                writes += 1
            for tenant in plan.removed:
                pipe.delete(limits_key(tenant))
                writes += 1
            if plan.removed:
                pipe.srem(TENANTS_KEY, *plan.removed)
                writes += 1
            pipe.hincrby(SYNC_STATUS_KEY, "generation", 1)
            pipe.hset(
                SYNC_STATUS_KEY,
                mapping={
                    "last_success_ms": int(time.time() * 1000),
                    "tenants": len(desired.tenants),
                    "source": source,
                    "condition": "ok",
                    "last_error": "",
                },
            )
            replies = await pipe.execute()
            if not plan.empty:
                # Not in the pipeline: Cluster pipelines refuse PUBLISH. Any node broadcasts it.
                await self._redis.publish(LIMITS_CHANNEL, "changed")
        generation = int(replies[-2])
        return SyncResult(
            written=plan.written,
            removed=plan.removed,
            unchanged=len(desired.tenants) - len(plan.written),
            defaults_changed=plan.defaults_changed,
            generation=generation,
            writes=writes,
            state=AppliedState(generation, desired.tenants, desired.defaults),
        )

    async def reconcile(self, desired: RuntimeOverrides, *, source: str = "") -> SyncResult:
        """Make Redis hold exactly `desired`, writing only what differs."""
        return await self.apply(await self.plan(desired), source=source)

    async def record_problem(self, condition: str, error: str) -> None:
        """Make a problem visible (the admin API shows the status key); limits stay as they are."""
        async with translated_errors("write sync status"), asyncio.timeout(self._timeout_s):
            await self._redis.hset(
                SYNC_STATUS_KEY,
                mapping={"condition": condition, "last_error": error, "last_error_ms": int(time.time() * 1000)},
            )


def read_tenant_limits(redis: SyncRedis, tenant: str) -> TenantLimits | None:
    """The tenant's stored limits, None when it has none (blocking: for the admin API's threads).
    Raises StoreUnavailable."""
    with translated_errors(f"HGETALL limits of {tenant!r}"):
        fields = redis.hgetall(limits_key(tenant))
    return decode_limits(fields) if fields else None


def _hash(limits: TenantLimits) -> dict[Any, Any]:
    # redis-py's mapping type is invariant in its keys; ours are plain str.
    return dict(encode_limits(limits))
