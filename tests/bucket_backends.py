"""Run scenario tables against a bucket backend: the pure model, or Lua on real Redis."""

from __future__ import annotations

import uuid
from typing import Protocol

from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import encode_limits, limits_key
from mimir_edge.core.token_bucket import BucketLimits, BucketState, Decision, decide
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import Redis, RedisConfig

from tests.scenarios import MAX_IDLE_MS, T0_US, Call, Scenario, SetLimits


class Backend(Protocol):
    async def set_limits(self, tenant: str, limits: TenantLimits | None) -> None: ...
    async def call(self, tenant: str, requests: int, items: int, defaults: BucketLimits, now_us: int) -> Decision: ...


class ModelBackend:
    def __init__(self) -> None:
        self.limits: dict[str, TenantLimits] = {}
        self.states: dict[str, BucketState] = {}

    async def set_limits(self, tenant: str, limits: TenantLimits | None) -> None:
        if limits is None:
            self.limits.pop(tenant, None)
        else:
            self.limits[tenant] = limits

    async def call(self, tenant: str, requests: int, items: int, defaults: BucketLimits, now_us: int) -> Decision:
        own = self.limits.get(tenant)
        bucket_limits = BucketLimits.from_tenant_limits(own) if own else defaults
        state = self.states.get(tenant, BucketState(None, None))
        new_state, decision = decide(
            state,
            bucket_limits,
            now_us=now_us,
            requests=requests,
            items=items,
            max_idle_ms=MAX_IDLE_MS,
            tenant_limits=own is not None,
        )
        self.states[tenant] = new_state
        return decision


class RedisBackend:
    def __init__(self, redis: Redis, config: RedisConfig):
        self.redis = redis
        self.store = BucketStore.for_config(config, redis, timeout_s=30.0, max_idle_ms=MAX_IDLE_MS)

    async def close(self) -> None:
        await self.store.close()

    async def set_limits(self, tenant: str, limits: TenantLimits | None) -> None:
        if limits is None:
            await self.redis.delete(limits_key(tenant))
        else:
            await self.redis.hset(limits_key(tenant), mapping=encode_limits(limits))

    async def call(self, tenant: str, requests: int, items: int, defaults: BucketLimits, now_us: int) -> Decision:
        return await self.store.decide(tenant, requests=requests, items=items, defaults=defaults, now_us=now_us)


async def run_scenario(backend: Backend, scenario: Scenario) -> list[Decision]:
    """Run every step, assert each call's stated expectations, return all decisions."""
    tenant = f"scenario-{uuid.uuid4().hex[:12]}"
    defaults = BucketLimits.from_tenant_limits(scenario.defaults)
    decisions = []
    for number, step in enumerate(scenario.steps):
        if isinstance(step, SetLimits):
            await backend.set_limits(tenant, step.limits)
            continue
        assert isinstance(step, Call)
        for _ in range(step.repeat):
            now_us = T0_US + round(step.at_ms * 1000)
            got = await backend.call(tenant, step.requests, step.items, defaults, now_us)
            where = f"{scenario.name!r} step {number}: {step} -> {got}"
            assert got.allowed is step.allowed, where
            assert got.reason is step.reason, where
            assert got.now_us == now_us, where
            if step.remaining_items is not None:
                assert abs(got.remaining_items - step.remaining_items) < 1e-6, where
            if step.retry_after_us is not None:
                assert got.retry_after_us == step.retry_after_us, where
            if step.expire_ms is not None:
                assert got.expire_ms == step.expire_ms, where
            if step.tenant_limits is not None:
                assert got.tenant_limits is step.tenant_limits, where
            decisions.append(got)
    return decisions
