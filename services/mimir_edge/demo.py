"""`mimir-edge demo`: the enforcement engine on a real local Redis, with sample traffic.

Starts redis-server on a free 127.0.0.1 port, loads `examples/overrides.yaml` the way
overrides-sync does, then sends each tenant's remote_write bodies through counting and the Lua
bucket for a few seconds and prints what was admitted and what was limited. (The full local
stack with Envoy and the RLS replaces this when it lands.)
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path

from mimir_edge.core.remote_write import count_write_request
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import RedisConfig, connect
from mimir_edge.store.limits import LimitsStore
from mimir_edge.sync.sources import read_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# tenant → (series per request, requests per second it tries to send)
TRAFFIC = {"team-a": (500, 20), "team-b": (200, 20), "noisy": (1000, 10), "no-overrides": (100, 5)}


async def _run(overrides_path: Path, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="mimir-edge-demo-") as tmp:
        server = RedisServer(Path(tmp)).start()
        print(f"redis-server pid {server.process.pid if server.process else '?'} on {server.url}")
        config = RedisConfig(url=server.url, timeout_s=1.0)
        redis = connect(config)
        try:
            overrides = read_files(overrides_path).parse()
            result = await LimitsStore(redis).reconcile(overrides)
            print(f"loaded {overrides_path}: {len(result.written)} tenants written (generation {result.generation})")
            store = BucketStore.for_config(config, redis)
            defaults = BucketLimits.from_tenant_limits(overrides.defaults)
            bodies = {t: compress(rw1_request(Shape(series=n))) for t, (n, _) in TRAFFIC.items()}
            stats: dict[str, Counter[str]] = {t: Counter() for t in TRAFFIC}

            async def tenant_traffic(tenant: str) -> None:
                _, per_second = TRAFFIC[tenant]
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    counts = count_write_request(
                        bodies[tenant],
                        content_type=RW1_HEADERS["content-type"],
                        max_decompressed_bytes=50 << 20,
                    )
                    decision = await store.decide(tenant, requests=1, items=counts.items, defaults=defaults)
                    s = stats[tenant]
                    s["sent"] += counts.items
                    s["admitted" if decision.allowed else "denied"] += counts.items
                    s[decision.reason.value] += 1
                    await asyncio.sleep(1 / per_second)

            print(f"sending remote_write traffic for {seconds:.0f} s ...\n")
            await asyncio.gather(*(tenant_traffic(t) for t in TRAFFIC))
            print(f"{'tenant':14} {'rate/s':>8} {'burst':>8} {'sent':>9} {'admitted':>9} {'denied':>9}  verdict")
            for tenant, s in stats.items():
                lim = overrides.limits_for(tenant)
                verdict = (
                    "LIMITED "
                    + ", ".join(f"{k}×{v}" for k, v in s.items() if k not in ("sent", "admitted", "denied", "allowed"))
                    if s["denied"]
                    else "within its limits"
                )
                print(
                    f"{tenant:14} {lim.ingestion_rate:>8.0f} {lim.effective_ingestion_burst:>8} "
                    f"{s['sent']:>9} {s['admitted']:>9} {s['denied']:>9}  {verdict}"
                )
            print(f"\n{store.decisions} decisions in {store.round_trips} Redis round trips")
        finally:
            await redis.aclose()
            server.stop()
            print("redis-server stopped")


def run(overrides_path: Path | None = None, seconds: float = 5.0) -> int:
    asyncio.run(_run(overrides_path or EXAMPLES / "overrides.yaml", seconds))
    return 0
