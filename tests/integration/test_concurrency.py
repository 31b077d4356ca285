"""20 concurrent clients hammer one tenant for 3 s: the shared bucket admits rate × elapsed + burst
(Redis time), within 1 %, on standalone Redis and on a 6-node Cluster."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import encode_limits, limits_key
from mimir_edge.core.token_bucket import BucketLimits, Decision
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import RedisConfig, connect

RATE = 20_000
# A burst of two seconds of rate: a stall of the test process shorter than that loses no tokens.
BURST = 40_000
CLIENTS = 20
DURATION_S = 3.0
MAX_ITEMS = 100


async def test_concurrent_clients_share_one_budget(redis_config: RedisConfig) -> None:
    tenant = f"hammer-{uuid.uuid4().hex[:8]}"
    admin = connect(redis_config)
    await admin.hset(
        limits_key(tenant),
        mapping=encode_limits(TenantLimits(ingestion_rate=RATE, ingestion_burst_size=BURST)),
    )
    defaults = BucketLimits(request_rate=0, request_burst=0, ingestion_rate=1, ingestion_burst=1)
    rng = random.Random(42)

    async def client(index: int) -> list[tuple[int, Decision]]:
        # Each client is its own connection pool and coalescer, as separate replicas would be.
        redis = connect(redis_config)
        store = BucketStore.for_config(redis_config, redis, timeout_s=2.0)
        seen = []
        deadline = time.monotonic() + DURATION_S
        while time.monotonic() < deadline:
            items = rng.randint(1, MAX_ITEMS)
            seen.append((items, await store.decide(tenant, requests=1, items=items, defaults=defaults)))
        await store.close()
        await redis.aclose()
        return seen

    results = [d for per_client in await asyncio.gather(*(client(i) for i in range(CLIENTS))) for d in per_client]
    await admin.aclose()

    admitted = sum(items for items, d in results if d.allowed)
    denied = sum(1 for _, d in results if not d.allowed)
    first = min(d.now_us for _, d in results)
    last = max(d.now_us for _, d in results)
    # The bucket is known to be (nearly) empty at a denial: measure up to the last one, so a client
    # that straggles after the others stopped cannot leave unspent tokens in the window.
    last_denied = max(d.now_us for _, d in results if not d.allowed)
    admitted_then = sum(items for items, d in results if d.allowed and d.now_us <= last_denied)
    expected = BURST + RATE * (last_denied - first) / 1e6
    print(
        f"decisions={len(results)} denied={denied} admitted={admitted} admitted-to-last-denial={admitted_then} "
        f"expected={expected:.0f} redis-elapsed={(last - first) / 1e6:.3f}s"
    )
    assert denied > 0, "the test must push the tenant over its limit"
    assert admitted <= BURST + RATE * (last - first) / 1e6 + 1e-6  # never more than the budget
    assert admitted_then <= expected + 1e-6
    assert abs(admitted_then - expected) <= 0.01 * expected
