"""Added latency and maximum rate of the enforcement filters, against Envoy passthrough, in one run.

Three Envoys side by side on the same upstream (bench/upstream.py) and one RLS process on one
redis-server: passthrough (no filters), `check` (ext_authz charges, the default) and `ratelimit`
(ext_authz counts, the rate limit filter charges: two RPCs per request). The body is a 2,000-sample
RW1 request; every request is admitted (the tenant's limits are far above the load).
Load: bench/loadgen.py in its own process (asyncio + uvloop).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.envoy import EnvoyProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

from bench import stack as bench_stack

ROOT = Path(__file__).resolve().parent.parent
TENANT = "bench-tenant"
OPEN_RATE = 100
OPEN_SECONDS = 15
CLOSED_SECONDS = 8
CLOSED_CONNECTIONS = 16
#: Envoy worker threads, the same for every configuration (one worker measured no better here).
ENVOY_WORKERS = 2


def _loadgen(mode: str, url: str, body_file: Path, **kw: Any) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        mode,
        "--url",
        url,
        "--body-file",
        str(body_file),
        "--headers",
        json.dumps({**RW1_HEADERS, "X-Scope-OrgID": TENANT}),
    ]
    for key, value in kw.items():
        argv += [f"--{key}", str(value)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True, timeout=300)
    return dict(json.loads(out.stdout))


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-envoy-") as tmp:
        work = Path(tmp)
        body_file = work / "body.bin"
        body_file.write_bytes(compress(rw1_request(Shape(series=2000))))
        started: list[Any] = []
        try:
            stack = bench_stack.start(
                work, {TENANT: TenantLimits(ingestion_rate=1e12, ingestion_burst_size=10**12)}, started
            )
            base = stack.envoy_options()
            targets = {
                "passthrough": replace(base, enforcement_filters=False),
                "check": base,
                "ratelimit": replace(base, charge="ratelimit"),
            }
            envoys = {}
            for name, options in targets.items():
                envoys[name] = EnvoyProcess(work / name, options, concurrency=ENVOY_WORKERS).start()
                started.append(envoys[name])
            rows = []
            for name, envoy in envoys.items():
                url = f"{envoy.url}/api/v1/push"
                _loadgen("open", url, body_file, rate=20, seconds=2)  # warm up connections
                fixed = _loadgen("open", url, body_file, rate=OPEN_RATE, seconds=OPEN_SECONDS, connections=32)
                time.sleep(0.5)
                peak = _loadgen("closed", url, body_file, seconds=CLOSED_SECONDS, connections=CLOSED_CONNECTIONS)
                rows.append({"target": name, "fixed_rate": fixed, "max_rate": peak})
        finally:
            for process in reversed(started):
                process.stop()
    base_latency = rows[0]["fixed_rate"]["latency_ms"]
    for row in rows:
        lat = row["fixed_rate"]["latency_ms"]
        row["added_ms"] = {q: round(lat[q] - base_latency[q], 3) for q in ("p50", "p99", "p99.9")}
    return {
        "body_bytes": len(compress(rw1_request(Shape(series=2000)))),
        "samples_per_request": 2000,
        "open_rate": OPEN_RATE,
        "open_seconds": OPEN_SECONDS,
        "closed_connections": CLOSED_CONNECTIONS,
        "closed_seconds": CLOSED_SECONDS,
        "rows": rows,
    }


def render(result: dict[str, Any]) -> list[str]:
    lines = [
        f"At a fixed {result['open_rate']} requests/s (open loop, {result['open_seconds']} s), latency in ms, and "
        f"the maximum rate ({result['closed_connections']} connections, closed loop, {result['closed_seconds']} s):",
        "",
        "| Envoy configuration | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 | max requests/s | "
        "max samples/s | non-200 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lat, added, peak = row["fixed_rate"]["latency_ms"], row["added_ms"], row["max_rate"]
        bad = sum(n for s, n in {**row["fixed_rate"]["statuses"], **peak["statuses"]}.items() if str(s) != "200")
        bad += row["fixed_rate"]["errors"] + peak["errors"]
        lines.append(
            f"| {row['target']} | {lat['p50']} | {lat['p99']} | {lat['p99.9']} | {added['p50']} | {added['p99']} | "
            f"{added['p99.9']} | {peak['rate']:,.0f} | {peak['rate'] * result['samples_per_request']:,.0f} | {bad} |"
        )
    lines += [
        "",
        f"Body: one RW1 request of {result['samples_per_request']:,} samples ({result['body_bytes']:,} bytes "
        "snappy). `check` = ext_authz decides (one RPC); `ratelimit` = ext_authz counts + rate limit filter "
        "charges (two RPCs). One RLS process; Envoy, the RLS, Redis, the upstream and the load generator share "
        "this machine's 2 cores. Targets: added p50 ≤ 1.5 ms, p99 ≤ 5 ms.",
    ]
    return lines
