"""RLS memory by what it holds: peak RSS (the kernel's VmHWM) of one `mimir-rls` process after
realistic traffic and after concurrent maximum-size bodies, each row in a fresh process.

What the pod sizes in the charts are computed from (docs/deployment-guide.md, "Sizing"): a check
holds its compressed body while it waits for its turn and one decompressed copy while it is
counted (counting runs on the event loop, one body at a time), so peak memory grows with the
number of large bodies in flight, not with the request rate.
"""

from __future__ import annotations

import asyncio
import random
import string
import tempfile
from pathlib import Path
from typing import Any

from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request
from mimir_edge.proto.prometheus import remote_pb2

from bench import stack as bench_stack

TENANT = "sizing"
MAX_REQUEST_BYTES = 52_428_800  # the RLS's default MAX_REQUEST_BYTES (50 MiB), the production value
REALISTIC_CHECKS = 4_000
CONNECTIONS = 16


def _limits() -> TenantLimits:
    # Everything admitted: the bench measures holding and counting bodies, not refusing them.
    return TenantLimits(ingestion_rate=1e12, ingestion_burst_size=10**12, request_rate=0.0)


def _incompressible(max_bytes: int) -> bytes:
    """Series with 30 labels of 2,048 random letters (Mimir's default maximum label count and value
    length): snappy finds no repeats, so compressed ≈ decompressed ≈ just under `max_bytes`."""
    rng = random.Random(17)
    one = remote_pb2.WriteRequest()
    _random_series(one, rng)
    # every series has the same size; 2 % below the limit leaves room for snappy's framing
    count = int(max_bytes * 0.98 // one.ByteSize())
    request = remote_pb2.WriteRequest()
    for _ in range(count):
        _random_series(request, rng)
    raw: bytes = request.SerializeToString()
    return raw


def _random_series(request: Any, rng: random.Random) -> None:
    series = request.timeseries.add()
    for k in range(30):
        series.labels.add(name=f"label_{k:02d}", value="".join(rng.choices(string.ascii_letters, k=2048)))
    series.samples.add(value=1.0, timestamp=1_700_000_000_000)


def _largest_realistic(max_bytes: int) -> bytes:
    """The realistic series shape (8 labels) repeated until the decompressed body nears `max_bytes`."""
    per_series = len(rw1_request(Shape(series=1000))) / 1000
    return rw1_request(Shape(series=int(max_bytes * 0.98 / per_series)))


def _check_request(body: bytes) -> bytes:
    head = [
        "POST /ext_authz/api/v1/push HTTP/1.1",
        "host: rls",
        f"x-scope-orgid: {TENANT}",
        *(f"{k}: {v}" for k, v in RW1_HEADERS.items()),
        f"content-length: {len(body)}",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _one_connection(port: int, request: bytes, count: int, statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()
        await writer.wait_closed()


def _send(port: int, body: bytes, connections: int, per_connection: int) -> dict[int, int]:
    request = _check_request(body)
    statuses: dict[int, int] = {}

    async def all_of_them() -> None:
        await asyncio.gather(*(_one_connection(port, request, per_connection, statuses) for _ in range(connections)))

    asyncio.run(all_of_them())
    return statuses


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _row(work: Path, name: str, raw: bytes, connections: int, per_connection: int) -> dict[str, Any]:
    body = compress(raw)
    started: list[Any] = []
    try:
        stack = bench_stack.start(work / name.replace(" ", "-"), {TENANT: _limits()}, started)
        rls: RlsProcess = stack.rls
        assert rls.process is not None
        pid = rls.process.pid
        idle = _kib(pid, "VmRSS")
        statuses = _send(rls.authz_http_port, body, connections, per_connection)
        return {
            "body": name,
            "compressed": len(body),
            "decompressed": len(raw),
            "in_flight": connections,
            "checks": connections * per_connection,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "idle_rss_mb": idle / 1024,
            "peak_rss_mb": _kib(pid, "VmHWM") / 1024,
        }
    finally:
        for process in reversed(started):
            process.stop()


def run() -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-rls-memory-"))
    realistic = rw1_request(Shape(series=2000))
    largest = _largest_realistic(MAX_REQUEST_BYTES)
    incompressible = _incompressible(MAX_REQUEST_BYTES)
    rows = [
        _row(work, "2,000 series × 8 labels", realistic, CONNECTIONS, REALISTIC_CHECKS // CONNECTIONS),
        _row(work, "largest realistic body (8 labels)", largest, 1, 3),
        _row(work, "largest realistic body (8 labels)", largest, 4, 2),
        _row(work, "largest incompressible body (30 × 2,048-letter values)", incompressible, 1, 3),
        _row(work, "largest incompressible body (30 × 2,048-letter values)", incompressible, 4, 2),
    ]
    return {"max_request_bytes": MAX_REQUEST_BYTES, "rows": rows}


def render(result: dict[str, Any]) -> list[str]:
    out = [
        f"One `mimir-rls` process per row (MAX_REQUEST_BYTES = {result['max_request_bytes']:,}), real Redis, "
        "checks sent straight to its ext_authz HTTP port, every check admitted. Peak RSS is the kernel's "
        "high-water mark (VmHWM) after the row's checks.",
        "",
        "| body | compressed | decompressed | bodies in flight | checks | answers | RSS at start | peak RSS |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in result["rows"]:
        answers = ", ".join(f"{k}: {v:,}" for k, v in r["statuses"].items())
        out.append(
            f"| {r['body']} | {r['compressed']:,} B | {r['decompressed']:,} B | {r['in_flight']} | {r['checks']:,} "
            f"| {answers} | {r['idle_rss_mb']:.1f} MB | **{r['peak_rss_mb']:.1f} MB** |"
        )
    return out
