"""overrides-sync cost by tenant count: parse, plan (read Redis), apply (write the difference).

For 10, 1,000 and 50,000 tenants on one redis-server: the first full sync (every tenant new), a
full resync with nothing changed, and a single-tenant edit. Redis writes are the commands sent
to change limits. In-process, through the same LimitsStore and parser overrides-sync uses.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from mimir_edge.localstack.redis import RedisServer
from mimir_edge.store.client import RedisConfig, connect
from mimir_edge.store.limits import AppliedState, LimitsStore
from mimir_edge.sync.sources import OverridesDocuments

SIZES = (10, 1000, 50_000)
_last: list[AppliedState | None] = [None]


def document(tenants: int, edited: int | None = None) -> str:
    lines = ["overrides:"]
    for i in range(tenants):
        rate = 1000 + i + (1 if i == edited else 0)
        lines += [
            f"  tenant-{i:06d}:",
            f"    ingestion_rate: {rate}",
            f"    ingestion_burst_size: {rate * 20}",
            "    max_global_series_per_user: 150000",
        ]
    return "\n".join(lines) + "\n"


async def _case(store: LimitsStore, text: str, known: AppliedState | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    desired = OverridesDocuments(text).parse()
    t1 = time.perf_counter()
    plan = await store.plan(desired, known=known)
    t2 = time.perf_counter()
    result = await store.apply(plan)
    t3 = time.perf_counter()
    _last[0] = result.state
    return {
        "parse_ms": round((t1 - t0) * 1000, 1),
        "plan_ms": round((t2 - t1) * 1000, 1),
        "apply_ms": round((t3 - t2) * 1000, 1),
        "total_ms": round((t3 - t0) * 1000, 1),
        "redis_writes": result.writes,
        "tenants_written": len(result.written),
    }


async def _run() -> dict[str, Any]:
    rows = []
    for size in SIZES:
        with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
            server = RedisServer(Path(tmp)).start()
            redis = connect(RedisConfig(url=server.url, timeout_s=60))
            try:
                store = LimitsStore(redis, timeout_s=120)
                base = document(size)
                rows.append({"tenants": size, "case": "first full sync", **await _case(store, base)})
                rows.append(
                    {
                        "tenants": size,
                        "case": "full resync (re-reads Redis), nothing changed",
                        **await _case(store, base),
                    }
                )
                rows.append(
                    {
                        "tenants": size,
                        "case": "one tenant edited (re-reads Redis)",
                        **await _case(store, document(size, edited=size // 2)),
                    }
                )
                rows.append(
                    {
                        "tenants": size,
                        "case": "one tenant edited (knows its last write)",
                        **await _case(store, document(size, edited=size // 3), known=_last[0]),
                    }
                )
                info = await redis.info("memory")
                rows[-1]["redis_used_memory_mb"] = round(info["used_memory"] / 1e6, 1)
            finally:
                await redis.aclose()
                server.stop()
    return {"rows": rows}


def run() -> dict[str, Any]:
    return asyncio.run(_run())


def render(result: dict[str, Any]) -> list[str]:
    lines = [
        "| tenants | case | parse | plan (read Redis) | apply (write) | total | Redis writes |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['tenants']:,} | {r['case']} | {r['parse_ms']} ms | {r['plan_ms']} ms | "
            f"{r['apply_ms']} ms | {r['total_ms']} ms | {r['redis_writes']:,} |"
        )
    lines += [
        "",
        "A running overrides-sync plans an edit from what it wrote last when the generation in Redis "
        "shows nobody else wrote since, and re-reads everything at each periodic resync. "
        "Parsing is PyYAML (libyaml scanner, Python constructor): the cost that grows with the file.",
        "",
        "Redis writes = commands that change limits (HSET per tenant written, one SADD/SREM, DEL per "
        "tenant removed); the status update is not counted. A resync that changes nothing writes nothing.",
    ]
    return lines
