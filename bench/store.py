"""Decisions/s of the Redis bucket store from one process, and Redis round trips per decision.

One BucketStore (what one RLS process has) on a real redis-server on 127.0.0.1; `concurrency`
asyncio tasks call `decide` back to back for a fixed time. Three transports side by side:
`resp` (the lean pipelining client the RLS uses on standalone Redis), `redis-py coalesced`
(pipelines, as on Cluster) and `redis-py per call` (one round trip each: the baseline). Round
trips are socket writes / pipelines sent; Redis CPU per decision comes from INFO commandstats.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from mimir_edge.core.admission import WriteCharge
from mimir_edge.core.ha_tracker import HaLimits
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import RedisConfig, connect

DURATION_S = 3.0
# Generous limits: every call is admitted, so every call also writes its bucket (the costly path).
LIMITS = BucketLimits(request_rate=1e9, request_burst=10**9, ingestion_rate=1e12, ingestion_burst=10**12)

#: Tenants with accept_ha_samples, each write from the elected replica of its HA pair: the Lua
#: call also reads and refreshes the tenant's HA tracker.
HA_LIMITS = dataclasses.replace(
    LIMITS,
    ha=HaLimits(
        accept_ha_samples=True,
        cluster_label="cluster",
        replica_label="__replica__",
        max_clusters=100,
        failover_timeout_us=30_000_000,
    ),
)
#: A Prometheus series with an HA pair's external labels: what the RLS passes to the script.
HA_LABELS = (
    ("__name__", "http_requests_total"),
    ("__replica__", "replica-1"),
    ("cluster", "ha-1"),
    ("code", "200"),
    ("instance", "10.0.0.1:9100"),
    ("job", "api-server"),
    ("method", "GET"),
    ("namespace", "ns-1"),
    ("pod", "api-server-1-x7k2p"),
)

CASES = [
    # (tenants, concurrency, transport, HA pair)
    (1, 1, "resp", False),
    (1, 64, "resp", False),
    (1000, 1, "resp", False),
    (1000, 64, "resp", False),
    (1000, 64, "resp", True),
    (1000, 1, "redis-py coalesced", False),
    (1000, 64, "redis-py coalesced", False),
    (1000, 64, "redis-py coalesced", True),
    (1000, 64, "redis-py per call", False),
]


async def _case(url: str, tenants: int, concurrency: int, transport: str, ha: bool) -> dict[str, Any]:
    config = RedisConfig(url=url, timeout_s=2.0)
    redis = connect(config)
    await redis.config_resetstat()
    if transport == "resp":
        store = BucketStore.for_config(config, redis)
    elif transport == "redis-py coalesced":
        store = BucketStore(redis, timeout_s=2.0)
    else:
        store = BucketStore(redis, timeout_s=2.0, max_batch=1, max_in_flight=concurrency)
    names = [f"bench-{'ha-' if ha else ''}{i}" for i in range(tenants)]
    charge = WriteCharge(items=2000, first_series_labels=HA_LABELS if ha else ())
    defaults = HA_LIMITS if ha else LIMITS
    deadline = time.perf_counter() + DURATION_S

    async def worker(offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline:
            await store.decide(names[i % tenants], charge=charge, defaults=defaults)
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    stats = await redis.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {})
    await store.close()
    await redis.aclose()
    return {
        "tenants": tenants,
        "concurrency": concurrency,
        "transport": transport,
        "ha": ha,
        "decisions": store.decisions,
        "decisions_per_s": round(store.decisions / elapsed),
        "round_trips_per_decision": round(store.round_trips / store.decisions, 3),
        "redis_usec_per_decision": float(evalsha.get("usec_per_call", 0.0)),
    }


async def _run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            rows = [await _case(server.url, *case) for case in CASES]
        finally:
            server.stop()
    return {"duration_s": DURATION_S, "rows": rows}


def run() -> dict[str, Any]:
    return asyncio.run(_run())


def render(result: dict[str, Any]) -> list[str]:
    lines = [
        "| transport | tenants | writes | concurrency | decisions/s | Redis round trips / decision "
        "| Redis µs / decision |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        writes = "HA pair (elected replica), 9 labels passed" if r.get("ha") else "not HA"
        lines.append(
            f"| {r['transport']} | {r['tenants']:,} | {writes} | {r['concurrency']} | "
            f"{r['decisions_per_s']:,} | {r['round_trips_per_decision']} | {r['redis_usec_per_decision']} |"
        )
    lines.append("")
    lines.append(
        f"One store (one RLS process's worth) on one redis-server, each case {result['duration_s']} s of "
        "back-to-back calls from asyncio tasks in the same process; every call admitted (writes its bucket)."
    )
    return lines
