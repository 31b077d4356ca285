"""The Lua token bucket on real Redis and a real 6-node Cluster: same tables, same answers as
the model, decision by decision."""

from __future__ import annotations

import asyncio
import time

import pytest
from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import bucket_key, encode_limits, limits_key
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import Redis, RedisConfig

from tests.bucket_backends import ModelBackend, RedisBackend, run_scenario
from tests.scenarios import SCENARIOS, Scenario


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_scenario_on_redis_matches_model(redis: Redis, redis_config: RedisConfig, scenario: Scenario) -> None:
    backend = RedisBackend(redis, redis_config)
    on_redis = await run_scenario(backend, scenario)
    await backend.close()
    on_model = await run_scenario(ModelBackend(), scenario)
    assert on_redis == on_model


async def test_idle_bucket_expires_in_real_time(redis: Redis, redis_config: RedisConfig) -> None:
    tenant = f"expiry-{time.monotonic_ns()}"
    await redis.hset(
        limits_key(tenant),
        mapping=encode_limits(TenantLimits(ingestion_rate=10_000, ingestion_burst_size=100)),
    )
    store = BucketStore.for_config(redis_config, redis, timeout_s=30.0)
    decision = await store.decide(tenant, requests=1, items=100, defaults=BucketLimits(0, 0, 1, 1))
    assert decision.allowed and decision.expire_ms == 10 + 1000
    ttl = await redis.pttl(bucket_key(tenant))
    assert 0 < ttl <= 1010
    await asyncio.sleep(1.2)
    assert await redis.exists(bucket_key(tenant)) == 0
    # The expired bucket is a full bucket again.
    again = await store.decide(tenant, requests=1, items=100, defaults=BucketLimits(0, 0, 1, 1))
    assert again.allowed
    await store.close()


async def test_denied_call_writes_nothing(redis: Redis, redis_config: RedisConfig) -> None:
    tenant = f"nowrite-{time.monotonic_ns()}"
    store = BucketStore.for_config(redis_config, redis, timeout_s=30.0)
    defaults = BucketLimits(request_rate=0, request_burst=0, ingestion_rate=1, ingestion_burst=5)
    assert not (await store.decide(tenant, requests=1, items=6, defaults=defaults)).allowed
    assert await redis.exists(bucket_key(tenant)) == 0
    await store.close()


async def test_script_is_reloaded_after_script_flush(redis: Redis, redis_config: RedisConfig) -> None:
    store = BucketStore.for_config(redis_config, redis, timeout_s=30.0)
    defaults = BucketLimits(request_rate=0, request_burst=0, ingestion_rate=100, ingestion_burst=100)
    await store.decide("noscript", requests=1, items=1, defaults=defaults)
    await redis.script_flush()
    decision = await store.decide("noscript", requests=1, items=1, defaults=defaults)
    assert decision.allowed
    await store.close()
