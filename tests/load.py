"""Open-loop load through a real proxy, with timed events (kill, restart), for fault tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from mimir_edge.localstack.http_load import Connection, build_request
from mimir_edge.localstack.traffic import RW1_HEADERS


@dataclass
class Sent:
    tenant: str
    at: float  # seconds since the start of the run
    latency_ms: float
    status: int


async def drive(
    url: str, plan: dict[str, tuple[bytes, float]], duration: float, events: list[tuple[float, Callable[[], None]]]
) -> list[Sent]:
    """Open-loop load: each tenant's requests start on a fixed schedule; `events` run on time."""
    results: list[Sent] = []
    start = time.perf_counter()
    loop = asyncio.get_running_loop()

    async def tenant_load(tenant: str, body: bytes, rps: float) -> None:
        host, port, request = build_request(url, body, {**RW1_HEADERS, "X-Scope-OrgID": tenant})
        idle: list[Connection] = []
        tasks = set()

        async def one(scheduled: float) -> None:
            conn = idle.pop() if idle else Connection(host, port, request)
            try:
                status = await conn.send()
                idle.append(conn)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = -1
            results.append(Sent(tenant, scheduled - start, (time.perf_counter() - scheduled) * 1000, status))

        for i in range(int(duration * rps)):
            scheduled = start + i / rps
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            task = asyncio.create_task(one(scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*list(tasks))
        for conn in idle:
            await conn.close()

    async def timeline() -> None:
        for at, action in events:
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            await loop.run_in_executor(None, action)

    await asyncio.gather(timeline(), *(tenant_load(t, body, rps) for t, (body, rps) in plan.items()))
    return results
