"""Added latency and maximum rate of the enforcement filters, against Envoy passthrough, in one run.

Four Envoys side by side on the same upstream (bench/upstream.py) and one RLS process on one
redis-server: passthrough (no filters), `check` (ext_authz charges over gRPC, the default),
`check over HTTP` (the same through the RLS's ext_authz HTTP service) and `ratelimit` (ext_authz
counts, the rate limit filter charges: two RPCs per request). Bodies: a small (10
series) and a Prometheus-sized (2,000 samples) RW1 request; every request is admitted (the
tenant's limits are far above the load). Latency is taken at half of the measured maximum rate,
and the maximum with 1, 2 and 4 RLS processes behind one Envoy.
Load: bench/loadgen.py in its own process (asyncio + uvloop).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.envoy import EnvoyProcess
from mimir_edge.localstack.processes import Process
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

from bench import stack as bench_stack

ROOT = Path(__file__).resolve().parent.parent
TENANT = "bench-tenant"
#: A tenant with accept_ha_samples, written to by the elected replica of an HA pair.
HA_TENANT = "bench-ha-tenant"
HA_LABELS = (("__replica__", "replica-1"), ("cluster", "ha-1"))
BODY_SERIES = (10, 2000)
OPEN_SECONDS = 6
ROUNDS = 3
CLOSED_SECONDS = 6
CLOSED_CONNECTIONS = 16
#: Envoy worker threads, the same for every configuration (one worker measured no better here).
ENVOY_WORKERS = 2


def _loadgen(
    mode: str, url: str, body_file: Path, cpus: set[int] | None = None, tenant: str = TENANT, **kw: Any
) -> dict[str, Any]:
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
        json.dumps({**RW1_HEADERS, "X-Scope-OrgID": tenant}),
    ]
    for key, value in kw.items():
        argv += [f"--{key}", str(value)]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True, timeout=300, preexec_fn=pin)
    return dict(json.loads(out.stdout))


def _pin(processes: list[Any], cpus: set[int]) -> None:
    for process in processes:
        os.sched_setaffinity(process.pid if isinstance(process, Process) else process.process.pid, cpus)


def _row(
    series: int,
    target: str,
    passthrough_url: str,
    url: str,
    body_file: Path,
    cpus: set[int] | None = None,
    tenant: str = TENANT,
) -> dict[str, Any]:
    """The configuration's maximum rate, then latency at half of it in interleaved rounds with
    passthrough at the same rate (so drift on this shared machine hits both alike). The row
    reports the median round; every round's added latency is kept."""
    peak = _loadgen(
        "closed", url, body_file, cpus=cpus, tenant=tenant, seconds=CLOSED_SECONDS, connections=CLOSED_CONNECTIONS
    )
    time.sleep(0.5)
    rate = max(10.0, round(peak["rate"] / 2))
    rounds = []
    for _ in range(ROUNDS):
        fixed_kw: dict[str, Any] = {"rate": rate, "seconds": OPEN_SECONDS, "connections": 32}
        base = _loadgen("open", passthrough_url, body_file, cpus=cpus, tenant=tenant, **fixed_kw)
        time.sleep(0.3)
        fixed = _loadgen("open", url, body_file, cpus=cpus, tenant=tenant, **fixed_kw)
        time.sleep(0.3)
        added = {q: round(fixed["latency_ms"][q] - base["latency_ms"][q], 3) for q in ("p50", "p99", "p99.9")}
        rounds.append({"passthrough": base, "fixed_rate": fixed, "added_ms": added})
    median = sorted(rounds, key=lambda r: r["added_ms"]["p50"])[len(rounds) // 2]
    return {
        "series": series,
        "ha": tenant == HA_TENANT,
        "target": target,
        "rate": rate,
        "passthrough": median["passthrough"],
        "fixed_rate": median["fixed_rate"],
        "max_rate": peak,
        "added_ms": median["added_ms"],
        "rounds_added_ms": [r["added_ms"] for r in rounds],
    }


def _own_core_row(stack: Any, envoys: dict[str, Any], body_file: Path, series: int, target: str) -> dict[str, Any]:
    """The check configuration with the RLS alone on core 1 and everything else (Envoy, Redis, the
    upstream, the load generator) on core 0: the RLS's own latency without the contention of this
    2-core machine. Passthrough is measured pinned the same way."""
    others = [envoys["passthrough"], envoys[target], stack.redis, stack.upstream]
    _pin([stack.rls], {1})
    _pin(others, {0})
    try:
        return _row(
            series,
            f"{target}, RLS alone on one core",
            f"{envoys['passthrough'].url}/api/v1/push",
            f"{envoys[target].url}/api/v1/push",
            body_file,
            cpus={0},
        )
    finally:
        _pin([stack.rls, *others], set(range(os.cpu_count() or 1)))


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-envoy-") as tmp:
        work = Path(tmp)
        bodies = {}
        for series in BODY_SERIES:
            bodies[series] = work / f"body-{series}.bin"
            bodies[series].write_bytes(compress(rw1_request(Shape(series=series))))
        ha_body = work / "body-2000-ha.bin"
        ha_body.write_bytes(compress(rw1_request(Shape(series=2000, external_labels=HA_LABELS))))
        started: list[Any] = []
        try:
            unlimited = TenantLimits(ingestion_rate=1e12, ingestion_burst_size=10**12)
            limits = {TENANT: unlimited, HA_TENANT: replace(unlimited, accept_ha_samples=True)}
            stack = bench_stack.start(work, limits, started, rls_count=4)
            base = stack.envoy_options(rls=1)
            targets = {
                "passthrough": replace(base, enforcement_filters=False),
                "check": base,
                "check over HTTP": stack.envoy_options(rls=1, transport="http"),
                "ratelimit": replace(base, charge="ratelimit"),
            }
            envoys = {}
            for name, options in targets.items():
                envoys[name] = EnvoyProcess(work / name, options, concurrency=ENVOY_WORKERS).start()
                started.append(envoys[name])
            for envoy in envoys.values():  # warm up connections
                _loadgen("open", f"{envoy.url}/api/v1/push", bodies[2000], rate=20, seconds=2)
            rows = []
            for series, body_file in bodies.items():
                configs = ("check", "check over HTTP", "ratelimit") if series == 2000 else ("check", "check over HTTP")
                for name in configs:
                    passthrough = f"{envoys['passthrough'].url}/api/v1/push"
                    rows.append(_row(series, name, passthrough, f"{envoys[name].url}/api/v1/push", body_file))
                    if series == 2000 and name != "ratelimit":
                        url = f"{envoys[name].url}/api/v1/push"
                        rows.append(_row(series, name, passthrough, url, ha_body, tenant=HA_TENANT))
            if (os.cpu_count() or 1) >= 2:
                for name in ("check", "check over HTTP"):
                    rows.append(_own_core_row(stack, envoys, bodies[2000], 2000, name))
            scaling = []
            for transport in ("grpc", "http"):
                for count in (1, 2, 4):
                    options = stack.envoy_options(rls=count, transport=transport)
                    envoy = EnvoyProcess(work / f"scale-{transport}-{count}", options, concurrency=2).start()
                    started.append(envoy)
                    url = f"{envoy.url}/api/v1/push"
                    _loadgen("open", url, bodies[2000], rate=20, seconds=1)
                    peak = _loadgen("closed", url, bodies[2000], seconds=CLOSED_SECONDS, connections=8 * count + 8)
                    scaling.append({"transport": transport, "rls_processes": count, "max_rate": peak})
                    envoy.stop()
        finally:
            for process in reversed(started):
                process.stop()
    return {
        "body_bytes": {s: len(compress(rw1_request(Shape(series=s)))) for s in BODY_SERIES},
        "ha_body_bytes": len(compress(rw1_request(Shape(series=2000, external_labels=HA_LABELS)))),
        "open_seconds": OPEN_SECONDS,
        "rounds": ROUNDS,
        "closed_connections": CLOSED_CONNECTIONS,
        "closed_seconds": CLOSED_SECONDS,
        "rows": rows,
        "scaling": scaling,
    }


def render(result: dict[str, Any]) -> list[str]:
    lines = [
        "Latency in ms at half of each configuration's maximum rate (open loop, "
        f"{result['open_seconds']} s), beside Envoy passthrough at the same rate, in {result['rounds']} interleaved "
        "rounds (the median round is shown, every round's added p50 in the last column); the maximum from "
        f"{result['closed_connections']} connections, closed loop, {result['closed_seconds']} s:",
        "",
        "| body | Envoy configuration | rate (half of max) | passthrough p50 / p99 / p99.9 "
        "| with RLS p50 / p99 / p99.9 | added p50 | added p99 | added p99.9 | max requests/s | max samples/s "
        "| non-200 | added p50 per round |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in result["rows"]:
        base, lat, added, peak = (
            row["passthrough"]["latency_ms"],
            row["fixed_rate"]["latency_ms"],
            row["added_ms"],
            row["max_rate"],
        )
        bad = 0
        for part in (row["fixed_rate"], peak, row["passthrough"]):
            bad += sum(n for s, n in part["statuses"].items() if str(s) != "200") + part["errors"]
        lines.append(
            f"| {row['series']:,} samples{', HA pair' if row.get('ha') else ''} | {row['target']} | "
            f"{row['rate']:,.0f}/s | "
            f"{base['p50']} / {base['p99']} / {base['p99.9']} | {lat['p50']} / {lat['p99']} / {lat['p99.9']} | "
            f"**{added['p50']}** | **{added['p99']}** | {added['p99.9']} | {peak['rate']:,.0f} | "
            f"{peak['rate'] * row['series']:,.0f} | {bad} | "
            f"{' / '.join(str(r['p50']) for r in row.get('rounds_added_ms', [added]))} |"
        )
    lines += [
        "",
        "Maximum rate through one Envoy (2 workers) with 1, 2 and 4 RLS processes (2,000-sample body):",
        "",
        "| ext_authz transport | RLS processes | max requests/s | max samples/s |",
        "|---|---:|---:|---:|",
    ]
    for row in result["scaling"]:
        rate = row["max_rate"]["rate"]
        lines.append(f"| {row['transport']} | {row['rls_processes']} | {rate:,.0f} | {rate * 2000:,.0f} |")
    sizes = ", ".join(f"{int(s):,} samples = {b:,} bytes" for s, b in result["body_bytes"].items())
    lines += [
        "",
        f"Bodies: RW1, snappy ({sizes}; 'HA pair': the 2,000 series also carry `cluster` and `__replica__`, "
        f"{result.get('ha_body_bytes', 0):,} bytes, for a tenant with `accept_ha_samples`, every request from "
        "the elected replica, so the Lua call also reads and refreshes the HA tracker). "
        "`check` = ext_authz decides (one gRPC call); `check over HTTP` = "
        "the same decision through the RLS's ext_authz HTTP service (AUTHZ_HTTP_ADDR, Envoy `http_service`); "
        "`ratelimit` = ext_authz counts + the rate limit filter charges (two gRPC calls). Envoy, the RLS "
        "processes, Redis, the upstream and the load generator all share this machine's 2 cores, so more than 2 "
        "processes cannot add throughput here; in a cluster each RLS pod has its own cores. The rows 'RLS alone "
        "on one core' pin the RLS to core 1 and everything else, load generator included, to core 0 (passthrough "
        "pinned the same way). Targets: added p50 ≤ 1.5 ms, p99 ≤ 5 ms at half the maximum rate; "
        "≥ 1,000,000 samples/s per RLS process.",
    ]
    return lines
