"""20 concurrent clients hammer one tenant for 3 s of Redis time past the first denial: the shared
bucket admits rate × elapsed + burst (Redis time), within 1 %, on standalone Redis and on a 6-node
Cluster."""

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

# The clients must spend faster than the rate or the bucket never empties: 5,000 items/s is about
# 100 decisions/s, a small fraction of what 20 clients manage even with both cores busy.
RATE = 5_000
# A burst of two seconds of rate: a stall of the test process shorter than that loses no tokens.
BURST = 10_000
CLIENTS = 20
# The run lasts until the bucket has been denying for this long (in Redis time), however long a
# loaded host takes to spend the burst; the wall-clock limit only stops a run that never gets there.
DENYING_S = 3.0
GIVE_UP_S = 120.0
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
    first_denied_us: list[int] = []
    give_up = time.monotonic() + GIVE_UP_S

    def done(decision: Decision) -> bool:
        if not decision.allowed and not first_denied_us:
            first_denied_us.append(decision.now_us)
        return bool(first_denied_us) and decision.now_us - first_denied_us[0] >= DENYING_S * 1e6

    async def client(index: int) -> list[tuple[int, Decision]]:
        # Each client is its own connection pool and coalescer, as separate replicas would be.
        redis = connect(redis_config)
        store = BucketStore.for_config(redis_config, redis, timeout_s=redis_config.timeout_s)
        seen = []
        try:
            while time.monotonic() < give_up:
                items = rng.randint(1, MAX_ITEMS)
                decision = await store.decide(tenant, requests=1, items=items, defaults=defaults)
                seen.append((items, decision))
                if done(decision):
                    break
        finally:  # closed even when one fails, or its sockets would warn in a later test
            await store.close()
            await redis.aclose()
        return seen

    results = [d for per_client in await asyncio.gather(*(client(i) for i in range(CLIENTS))) for d in per_client]
    await admin.aclose()

    assert first_denied_us, f"the test must push the tenant over its limit (nothing denied in {GIVE_UP_S} s)"
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
    assert (last - first_denied_us[0]) / 1e6 >= DENYING_S, f"the run gave up after {GIVE_UP_S} s"
    assert admitted <= BURST + RATE * (last - first) / 1e6 + 1e-6  # never more than the budget
    assert admitted_then <= expected + 1e-6
    assert abs(admitted_then - expected) <= 0.01 * expected
