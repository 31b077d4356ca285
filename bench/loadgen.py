"""A small HTTP/1.1 load generator for POSTing one prepared body, run in its own process.

    python -m bench.loadgen open   --url http://127.0.0.1:8080/api/v1/push --rate 100 --seconds 10 ...
    python -m bench.loadgen closed --url ... --connections 16 --seconds 5 ...

`open`: open loop, requests start on a fixed schedule whatever the answers do; latency is
measured from the scheduled start (no coordinated omission). `closed`: each connection sends its
next request as soon as the previous answer arrived: the maximum rate the target sustains.
Prints one JSON object: counts per status, latency percentiles (ms), achieved rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from mimir_edge.localstack.http_load import Connection, build_request


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    if not latencies_ms:
        return {}
    data = sorted(latencies_ms)
    q = statistics.quantiles(data, n=1000, method="inclusive")
    return {
        "p50": round(q[499], 3),
        "p90": round(q[899], 3),
        "p99": round(q[989], 3),
        "p99.9": round(q[998], 3),
        "max": round(data[-1], 3),
    }


async def open_loop(host: str, port: int, request: bytes, rate: float, seconds: float, pool: int) -> dict[str, object]:
    idle = [Connection(host, port, request) for _ in range(pool)]
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    errors = 0
    tasks = set()
    start = time.perf_counter() + 0.05
    total = int(rate * seconds)

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = idle.pop() if idle else Connection(host, port, request)
        try:
            status = await conn.send()
            latencies.append((time.perf_counter() - scheduled) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            idle.append(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1

    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {
        "mode": "open",
        "target_rate": rate,
        "sent": total,
        "statuses": statuses,
        "errors": errors,
        "achieved_rate": round(total / elapsed, 1),
        "latency_ms": percentiles(latencies),
    }


async def closed_loop(host: str, port: int, request: bytes, connections: int, seconds: float) -> dict[str, object]:
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        conn = Connection(host, port, request)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                status = await conn.send()
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                conn = Connection(host, port, request)
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    done = sum(statuses.values())
    return {
        "mode": "closed",
        "connections": connections,
        "completed": done,
        "statuses": statuses,
        "errors": errors,
        "rate": round(done / elapsed, 1),
        "latency_ms": percentiles(latencies),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("open", "closed"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--headers", default="{}", help="JSON object of request headers")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    host, port, request = build_request(args.url, args.body_file.read_bytes(), json.loads(args.headers))
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        if args.mode == "open":
            result = runner.run(open_loop(host, port, request, args.rate, args.seconds, args.connections))
        else:
            result = runner.run(closed_loop(host, port, request, args.connections, args.seconds))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
