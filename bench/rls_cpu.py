"""CPU time per check of one RLS process, straight to its ext_authz HTTP service (no Envoy).

The RLS's own process CPU (utime + stime from /proc/PID/stat) before and after a closed-loop run
of the load generator, divided by the checks it answered: wall-clock noise on a shared machine
does not enter, only the work the process did. With 2 or more cores the RLS is pinned to core 1
and everything else (Redis, the load generator) to core 0, so the checks/s column is what one
process sustains on one core. Peak RSS is the process's VmHWM after every body.

    python -m bench.rls_cpu                      # the table
    python -m bench.rls_cpu --profile out.txt    # also py-spy, realistic body, top frames to out.txt
    python -m bench.rls_cpu --profile out.txt --profile-body otlp    # another body's
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis as sync_redis
from mimir_edge.contract import CHECK_PREFIX
from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import encode_limits, limits_key
from mimir_edge.localstack.processes import MissingProgram
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess

from bench import bodies as bench_bodies
from bench.loadgen_client import run_loadgen

TENANT = "bench-tenant"
SECONDS = {"small": 4.0, "realistic": 6.0, "worst": 6.0, "otlp": 6.0}
CONNECTIONS = 8
#: Target of issue #17: ≤ 0.4 ms of RLS CPU per realistic 2,000-series check.
TARGET_CPU_MS = 0.4
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> tuple[float, float]:
    """(utime, stime) of `pid`, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[11]) * _TICK_S, int(fields[12]) * _TICK_S


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def _pin(pid: int, cpus: set[int]) -> None:
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(pid, cpus)


def _measure(rls: RlsProcess, body: bench_bodies.Body, body_file: Path, seconds: float) -> dict[str, Any]:
    assert rls.process is not None
    pid = rls.process.pid
    url = f"http://{rls.authz_http_addr}{CHECK_PREFIX}{body.path}"
    headers = {**body.headers, "x-scope-orgid": TENANT}
    load_cpus = {0} if (os.cpu_count() or 1) >= 2 else None
    run_loadgen("closed", url, body_file, headers, cpus=load_cpus, seconds=1, connections=CONNECTIONS)  # warm up
    user0, system0 = process_cpu_s(pid)
    out = run_loadgen("closed", url, body_file, headers, cpus=load_cpus, seconds=seconds, connections=CONNECTIONS)
    user1, system1 = process_cpu_s(pid)
    user, system = user1 - user0, system1 - system0
    cpu = user + system
    checks = int(out["completed"])
    refused = sum(n for s, n in out["statuses"].items() if str(s) != "200") + out["errors"]
    if checks == 0 or refused:
        raise RuntimeError(f"{body.name}: {checks} checks, {refused} not 200: {out}; RLS log: {rls.process.tail()}")
    return {
        "body": body.describe(),
        "checks": checks,
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_check": round(cpu / checks * 1000, 4),
        # System time is mostly the kernel's loopback TCP work for the check's and Redis' sockets.
        "user_ms_per_check": round(user / checks * 1000, 4),
        "system_ms_per_check": round(system / checks * 1000, 4),
        "checks_per_cpu_s": round(checks / cpu, 1) if cpu else None,
        "checks_per_s": out["rate"],
        "latency_ms": out["latency_ms"],
        "peak_rss_mb": round(peak_rss_mb(pid), 1),
    }


def _profile(pid: int, seconds: float, out: Path) -> None:
    """py-spy `record --format raw` for `seconds`, summarised as the top self and total frames."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        raise MissingProgram(f"py-spy not found at {py_spy}: install it into the venv (pip install py-spy)")
    raw = out.with_suffix(".raw")
    # --gil: only the thread holding the GIL is sampled, so idle threads (the admin server's
    # poll) do not count; --native: time inside C extensions (uvloop, cramjam, the walker) shows.
    argv = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--gil", "--native"]
    argv += ["--format", "raw", "-o", str(raw)]
    subprocess.run(argv, check=True, capture_output=True)
    out.write_text(summarise_collapsed(raw.read_text()))


def summarise_collapsed(text: str, top: int = 25) -> str:
    """Top frames by own samples and by inclusive samples from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
    lines = [f"{samples} samples", "", "own %  frame"]
    lines += [f"{n / samples * 100:5.1f}  {f}" for f, n in sorted(own.items(), key=lambda x: -x[1])[:top]]
    lines += ["", "total %  frame"]
    lines += [f"{n / samples * 100:5.1f}  {f}" for f, n in sorted(total.items(), key=lambda x: -x[1])[:top]]
    return "\n".join(lines) + "\n"


def run(profile: Path | None = None, profile_body: str = "realistic") -> dict[str, Any]:
    bodies = bench_bodies.build()
    rows = []
    started: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="bench-rls-cpu-") as tmp:
        work = Path(tmp)
        try:
            redis = RedisServer(work / "redis").start()
            started.append(redis)
            client = sync_redis.Redis.from_url(redis.url)
            unlimited = TenantLimits(ingestion_rate=1e12, ingestion_burst_size=10**12, request_rate=1e9)
            client.hset(limits_key(TENANT), mapping=dict(encode_limits(unlimited)))  # type: ignore[arg-type]
            client.close()
            rls = RlsProcess(work, env={"REDIS_URL": redis.url, "LOG_LEVEL": "warning"}).start()
            started.append(rls)
            assert rls.process is not None and redis.process is not None
            _pin(rls.process.pid, {1})
            _pin(redis.process.pid, {0})
            for key, body in bodies.items():
                body_file = work / f"{key}.bin"
                body_file.write_bytes(body.data)
                if profile is not None and key == profile_body:
                    url = f"http://{rls.authz_http_addr}{CHECK_PREFIX}{body.path}"
                    headers = {**body.headers, "x-scope-orgid": TENANT}
                    load = subprocess.Popen(
                        _loadgen_argv(url, body_file, headers, SECONDS[key] + 3), stdout=subprocess.DEVNULL
                    )
                    time.sleep(1)
                    _profile(rls.process.pid, SECONDS[key], profile)
                    load.wait(60)
                rows.append(_measure(rls, body, body_file, SECONDS[key]))
        finally:
            for process in reversed(started):
                process.stop()
    return {"connections": CONNECTIONS, "target_cpu_ms": TARGET_CPU_MS, "rows": rows}


def _loadgen_argv(url: str, body_file: Path, headers: dict[str, str], seconds: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.loadgen",
        "closed",
        "--url",
        url,
        "--body-file",
        str(body_file),
        "--headers",
        json.dumps(headers),
        "--seconds",
        str(seconds),
        "--connections",
        str(CONNECTIONS),
    ]


def render(result: dict[str, Any]) -> list[str]:
    lines = [
        "| body | checks | RLS CPU per check | user / system | checks per CPU-second | checks/s (closed loop) "
        "| p50 / p99 ms | peak RSS |",
        "|---|---:|---:|---|---:|---:|---|---:|",
    ]
    for row in result["rows"]:
        lat = row["latency_ms"]
        lines.append(
            f"| {row['body']['name']} | {row['checks']:,} | **{row['cpu_ms_per_check']} ms** | "
            f"{row.get('user_ms_per_check')} / {row.get('system_ms_per_check')} ms | "
            f"{row['checks_per_cpu_s']:,} | {row['checks_per_s']:,} | {lat['p50']} / {lat['p99']} | "
            f"{row['peak_rss_mb']} MB |"
        )
    realistic = next((r for r in result["rows"] if r["body"]["key"] == "realistic"), None)
    verdict = ""
    if realistic is not None:
        met = realistic["cpu_ms_per_check"] <= result["target_cpu_ms"]
        verdict = (
            f" Target: ≤ {result['target_cpu_ms']} ms per realistic check: "
            f"**{'met' if met else 'not met'}** ({realistic['cpu_ms_per_check']} ms)."
        )
    lines += [
        "",
        "Straight to the RLS's ext_authz HTTP service (no Envoy), real Redis; the load generator closed loop, "
        f"{result['connections']} connections. CPU = the RLS process's utime + stime (/proc/PID/stat) over the run "
        "÷ checks answered (all 200); with 2 cores the RLS is pinned alone to core 1, Redis and the load generator "
        "to core 0. Bodies: protocol, series (points for OTLP) × labels per series, compressed / decompressed."
        + verdict,
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, help="write py-spy's top frames for one body here")
    parser.add_argument(
        "--profile-body", default="realistic", choices=sorted(bench_bodies.build()), help="the body --profile profiles"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    result = run(args.profile, args.profile_body)
    print(json.dumps(result, indent=2))
    print("\n".join(render(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
