"""Cost of the cluster-wide statistics: `StatsRecorder.record()` per call, and Redis memory per
active tenant per 10 s bucket. `python bench/stats_memory.py` (prints; starts its own redis-server)."""

from __future__ import annotations

import asyncio
import tempfile
import timeit
from pathlib import Path

from mimir_edge.admin.stats import StatsRecorder
from mimir_edge.core.verdict import Cause, Outcome
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.store.client import RedisConfig, connect, connect_sync

TENANTS = 1000
BUCKETS = 10
CALLS = 200_000


async def main() -> None:
    server = RedisServer(Path(tempfile.mkdtemp(prefix="stats-memory-"))).start()
    try:
        config = RedisConfig(url=server.url, timeout_s=5)
        redis, sync = connect(config), connect_sync(config)
        timing = StatsRecorder(redis, replica_id="timing")
        seconds = timeit.timeit(lambda: timing.record("tenant-1", Outcome.ALLOWED, Cause.ALLOWED, 100), number=CALLS)
        print(f"record(): {seconds / CALLS * 1e9:.0f} ns per call")
        recorder = StatsRecorder(redis, replica_id="memory")
        before = sync.info("memory")["used_memory"]
        for bucket in range(BUCKETS):
            for i in range(TENANTS):
                recorder.record(f"tenant-{i:05d}", Outcome.ALLOWED, Cause.ALLOWED, 100)
                if i % 10 == 0:  # one tenant in ten is also denied
                    recorder.record(f"tenant-{i:05d}", Outcome.DENIED, Cause.INGESTION_RATE, 100)
            await recorder.flush(now=1_800_000_000 + bucket * 10)
        used = sync.info("memory")["used_memory"] - before
        per = used / BUCKETS / TENANTS
        print(f"{TENANTS} tenants x {BUCKETS} buckets of 10 s: {used / 1e6:.1f} MB, {per:.0f} B per tenant per bucket")
        print(
            f"full retention (360 + 288 buckets), {TENANTS} always-active tenants: {per * 648 * TENANTS / 1e6:.0f} MB"
        )
        await redis.aclose()
        sync.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
