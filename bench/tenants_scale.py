"""Cost growth with the tenant count: decisions/s and Redis memory per tenant, 10 to 100,000
tenants. For each count, a fresh redis-server gets every tenant's limits (as overrides-sync
writes them) and one decision per tenant (so every bucket exists), then one store (one RLS
process's worth) decides for random tenants at concurrency 64 for a fixed time."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import encode_limits, limits_key
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import RedisConfig, connect

COUNTS = (10, 1_000, 10_000, 100_000)
DURATION_S = 3.0
CONCURRENCY = 64
# A huge burst (every call admitted, so every call writes) and a slow refill: a bucket expires
# only once full again, so with this refill every touched bucket is still there to be measured.
DEFAULTS = BucketLimits(request_rate=0, request_burst=0, ingestion_rate=1.0, ingestion_burst=10**12)
LIMITS = encode_limits(TenantLimits(ingestion_rate=1.0, ingestion_burst_size=10**12))


async def _case(url: str, tenants: int) -> dict[str, Any]:
    config = RedisConfig(url=url, timeout_s=5.0)
    redis = connect(config)
    await redis.flushall()
    base = int((await redis.info("memory"))["used_memory"])
    names = [f"tenant-{i:06d}" for i in range(tenants)]
    for start in range(0, tenants, 1000):
        pipe = redis.pipeline(transaction=False)
        for name in names[start : start + 1000]:
            pipe.hset(limits_key(name), mapping=dict(LIMITS))  # type: ignore[arg-type]
        await pipe.execute()
    with_limits = int((await redis.info("memory"))["used_memory"])
    store = BucketStore.for_config(config, redis)
    for start in range(0, tenants, 1000):
        await asyncio.gather(
            *(store.decide(n, requests=1, items=2000, defaults=DEFAULTS) for n in names[start : start + 1000])
        )
    with_buckets = int((await redis.info("memory"))["used_memory"])
    await redis.config_resetstat()
    rng = random.Random(5)
    done = 0
    deadline = time.perf_counter() + DURATION_S

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await store.decide(names[rng.randrange(tenants)], requests=1, items=2000, defaults=DEFAULTS)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    stats = await redis.info("commandstats")
    await store.close()
    await redis.aclose()
    return {
        "tenants": tenants,
        "decisions_per_s": round(done / elapsed),
        "redis_usec_per_decision": float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", 0.0)),
        "limits_bytes_per_tenant": round((with_limits - base) / tenants),
        "bucket_bytes_per_tenant": round((with_buckets - with_limits) / tenants),
        "redis_used_memory_mb": round(with_buckets / 1e6, 1),
    }


async def _run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-tenants-") as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            rows = [await _case(server.url, n) for n in COUNTS]
        finally:
            server.stop()
    return {"duration_s": DURATION_S, "concurrency": CONCURRENCY, "rows": rows}


def run() -> dict[str, Any]:
    return asyncio.run(_run())


def per_tenant(row: dict[str, Any], key: str) -> str:
    # Below ~1,000 tenants the allocator's own steps dominate INFO used_memory's difference.
    return str(row[key]) if row["tenants"] >= 1000 else "(too few to measure)"


def render(result: dict[str, Any]) -> list[str]:
    lines = [
        "| tenants | decisions/s | Redis µs / decision | limits bytes / tenant | bucket bytes / tenant "
        "| Redis used memory |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['tenants']:,} | {r['decisions_per_s']:,} | {r['redis_usec_per_decision']} | "
            f"{per_tenant(r, 'limits_bytes_per_tenant')} | {per_tenant(r, 'bucket_bytes_per_tenant')} | "
            f"{r['redis_used_memory_mb']} MB |"
        )
    lines.append("")
    lines.append(
        f"One store (one RLS process) at concurrency {result['concurrency']} for {result['duration_s']} s per row, "
        "random tenants; Redis memory from INFO used_memory after writing every tenant's limits hash and touching "
        "its bucket (idle buckets expire by themselves once full again)."
    )
    return lines
