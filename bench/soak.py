"""Soak: 15 minutes at about half of one RLS process's capacity, through Envoy; RSS and open
file descriptors of the RLS (and Envoy) sampled throughout must stay flat (within 10 %).

Not part of the default `make bench` (it takes 15 minutes): `python bench/run.py soak`.
Two open-loop generators: a compliant tenant and a noisy one (mostly 429s), 2,000-sample bodies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.envoy import EnvoyProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

from bench import stack as bench_stack

ROOT = Path(__file__).resolve().parent.parent
DURATION_S = int(os.environ.get("SOAK_SECONDS", "900"))
WARMUP_S = 60
SAMPLE_EVERY_S = 30
RATES = {"soak-ok": 400, "soak-noisy": 150}  # req/s; about half of the measured maximum together


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        work = Path(tmp)
        body = work / "body.bin"
        body.write_bytes(compress(rw1_request(Shape(series=2000))))
        started: list[Any] = []
        generators: list[subprocess.Popen[str]] = []
        try:
            stack = bench_stack.start(
                work,
                {
                    "soak-ok": TenantLimits(ingestion_rate=1e9, ingestion_burst_size=10**9),
                    "soak-noisy": TenantLimits(ingestion_rate=20_000, ingestion_burst_size=40_000),
                },
                started,
            )
            rls = stack.rls
            envoy = EnvoyProcess(work / "envoy", stack.envoy_options()).start()
            started.append(envoy)
            for tenant, rate in RATES.items():
                generators.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "bench.loadgen",
                            "open",
                            "--url",
                            f"{envoy.url}/api/v1/push",
                            "--body-file",
                            str(body),
                            "--headers",
                            json.dumps({**RW1_HEADERS, "X-Scope-OrgID": tenant}),
                            "--rate",
                            str(rate),
                            "--seconds",
                            str(DURATION_S),
                            "--connections",
                            "64",
                        ],
                        cwd=ROOT,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            assert rls.process is not None and envoy.process is not None
            samples = []
            begin = time.monotonic()
            while time.monotonic() - begin < DURATION_S:
                time.sleep(SAMPLE_EVERY_S)
                samples.append(
                    {
                        "t_s": round(time.monotonic() - begin),
                        "rls_rss_kb": _rss_kb(rls.process.pid),
                        "rls_fds": _fds(rls.process.pid),
                        "envoy_rss_kb": _rss_kb(envoy.process.pid),
                    }
                )
            loads = [json.loads(g.communicate(timeout=120)[0]) for g in generators]
        finally:
            for g in generators:
                if g.poll() is None:
                    g.kill()
            for process in reversed(started):
                process.stop()
    steady = [s for s in samples if s["t_s"] >= WARMUP_S]
    first, last = steady[0], steady[-1]
    return {
        "duration_s": DURATION_S,
        "rates": RATES,
        "samples": samples,
        "rls_rss_growth": round(last["rls_rss_kb"] / first["rls_rss_kb"] - 1, 4),
        "rls_fds_growth": round(last["rls_fds"] / first["rls_fds"] - 1, 4),
        "envoy_rss_growth": round(last["envoy_rss_kb"] / first["envoy_rss_kb"] - 1, 4),
        "first": first,
        "last": last,
        "load": [
            {"tenant": t, "statuses": load["statuses"], "errors": load["errors"], "latency_ms": load["latency_ms"]}
            for t, load in zip(RATES, loads, strict=True)
        ],
    }


def render(result: dict[str, Any]) -> list[str]:
    first, last = result["first"], result["last"]
    lines = [
        f"{result['duration_s'] // 60} minutes, open loop: "
        + ", ".join(f"{t} {r} req/s" for t, r in result["rates"].items())
        + f"; samples every {SAMPLE_EVERY_S} s, compared from minute {WARMUP_S // 60} to the end.",
        "",
        "| process | at warm-up end | at the end | growth |",
        "|---|---:|---:|---:|",
        f"| RLS RSS | {first['rls_rss_kb'] / 1024:.1f} MB | {last['rls_rss_kb'] / 1024:.1f} MB | "
        f"{result['rls_rss_growth']:+.1%} |",
        f"| RLS open fds | {first['rls_fds']} | {last['rls_fds']} | {result['rls_fds_growth']:+.1%} |",
        f"| Envoy RSS | {first['envoy_rss_kb'] / 1024:.1f} MB | {last['envoy_rss_kb'] / 1024:.1f} MB | "
        f"{result['envoy_rss_growth']:+.1%} |",
        "",
    ]
    for load in result["load"]:
        lines.append(
            f"- {load['tenant']}: statuses {load['statuses']}, errors {load['errors']}, "
            f"latency p50 {load['latency_ms'].get('p50')} ms, p99 {load['latency_ms'].get('p99')} ms"
        )
    return lines
