"""Redis killed for 20 s under steady load through real Envoy and 3 RLS replicas, in each
failure mode: allow admits everything without a latency cliff, deny answers only 503s, local
holds a noisy tenant near its budget; when Redis returns, shared enforcement resumes within 2 s
(and overrides-sync writes the limits the empty Redis lost)."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.localstack.distributor import StandInDistributor
from mimir_edge.localstack.processes import free_port
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.sync import SyncProcess
from mimir_edge.localstack.traffic import Shape, compress, rw1_request

from tests.load import Sent, drive
from tests.stack import Stack
from tests.waiting import wait_for

HEALTHY_S, OUTAGE_S, AFTER_S = 6.0, 20.0, 6.0
NOISY_RATE = 2000  # items/s, burst = rate
NOISY_ITEMS, NOISY_RPS = 100, 60  # 6,000 items/s offered: 3x the limit
QUIET_ITEMS, QUIET_RPS = 10, 40


def windowed_p99(results: list[Sent]) -> float:
    """The median over 1-second windows of each window's p99 latency (ms)."""
    windows: dict[int, list[float]] = {}
    for r in results:
        windows.setdefault(int(r.at), []).append(r.latency_ms)
    return statistics.median(statistics.quantiles(w, n=100)[98] for w in windows.values() if len(w) >= 20)


def breaker_closed_at(log: Path) -> float:
    """When the replica logged its breaker closing (epoch seconds)."""
    for line in reversed(log.read_text().splitlines()):
        if line.startswith("{") and '"redis circuit breaker closed"' in line:
            stamp = json.loads(line)["timestamp"]
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    raise AssertionError(f"no breaker close logged in {log}")


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=2) as reply:
        text = reply.read().decode()
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("mode", ["allow", "deny", "local"])
def test_redis_outage(mode: str, tmp_path: Path) -> None:
    port = free_port()
    redis = RedisServer(tmp_path / "redis-1", port=port).start()
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(f"overrides:\n  noisy:\n    ingestion_rate: {NOISY_RATE}\n    ingestion_burst_factor: 1\n")
    sync = SyncProcess(tmp_path, ["--source", "file", "--path", str(overrides), "--redis-url", redis.url]).start()
    distributor = StandInDistributor().start()
    stack = Stack(tmp_path)
    restarted: list[RedisServer] = []
    try:
        replicas = [
            stack.add_rls({"REDIS_URL": redis.url, "FAILURE_MODE": mode, "LOG_LEVEL": "warning"}) for _ in range(3)
        ]
        envoy = stack.add_envoy(
            EnvoyOptions(
                # gRPC: the 503s of deny mode keep the RLS's Retry-After (test_envoy_rls.py runs
                # the outage over both transports).
                rls=tuple(("127.0.0.1", r.grpc_port) for r in replicas),
                authz_transport="grpc",
                upstream=("127.0.0.1", distributor.port),
                listen=("127.0.0.1", 0),
                admin=("127.0.0.1", 0),
                failure_mode_allow=mode != "deny",
            )
        )
        wait_for(
            lambda: all(metric(r.metrics_url, "rls_live_replicas") == 3 for r in replicas),
            timeout_s=30,
            what="replicas registered",
        )
        restart_at: list[float] = []

        def restart() -> None:
            restarted.append(RedisServer(tmp_path / "redis-2", port=port).start())
            # From when Redis answers (start() waits for its PING), not from when it was launched:
            # how long a loaded host takes to start redis-server is not the breaker's doing.
            restart_at.append(time.time())

        plan = {
            "noisy": (compress(rw1_request(Shape(series=NOISY_ITEMS))), NOISY_RPS),
            "quiet": (compress(rw1_request(Shape(series=QUIET_ITEMS))), QUIET_RPS),
        }
        results = asyncio.run(
            drive(
                envoy.url,
                plan,
                HEALTHY_S + OUTAGE_S + AFTER_S,
                [(HEALTHY_S, redis.kill), (HEALTHY_S + OUTAGE_S, restart)],
            )
        )
        wait_for(
            lambda: all(metric(r.metrics_url, "rls_redis_breaker_open") == 0 for r in replicas),
            timeout_s=30,
            what="breakers closed",
        )
        closed_after = max(breaker_closed_at(r.process.log_path) for r in replicas if r.process) - restart_at[0]

        healthy = [r for r in results if 1.0 <= r.at < HEALTHY_S]
        outage = [r for r in results if HEALTHY_S + 0.2 <= r.at < HEALTHY_S + OUTAGE_S]
        after = [r for r in results if r.at >= HEALTHY_S + OUTAGE_S + 2.0]
        assert not [r for r in results if r.status == -1], "connection errors"
        assert {r.status for r in healthy if r.tenant == "quiet"} == {200}
        assert 429 in {r.status for r in healthy if r.tenant == "noisy"}, "noisy must be limited while healthy"

        if mode == "allow":
            assert {r.status for r in outage} == {200}
            p99 = {name: windowed_p99(window) for name, window in (("healthy", healthy), ("outage", outage))}
            plain = statistics.quantiles([r.latency_ms for r in outage], n=100)[98]
            print(
                f"\nallow: p99 per 1 s window (median) healthy {p99['healthy']:.2f} ms, during the outage "
                f"{p99['outage']:.2f} ms; plain p99 during the outage {plain:.2f} ms"
            )
            # A latency cliff (every check trying the dead Redis) is what the breaker prevents: each
            # replica opened it, so checks took the failure path without asking Redis. The latencies
            # above are printed, not asserted: a loaded host moves them by more than the effect.
            for r in replicas:
                assert metric(r.metrics_url, 'rls_redis_breaker_transitions_total{state="open"}') >= 1, r.grpc_addr
        elif mode == "deny":
            assert {r.status for r in outage} == {503}
        else:
            admitted = sum(NOISY_ITEMS for r in outage if r.tenant == "noisy" and r.status == 200)
            window = (HEALTHY_S + OUTAGE_S) - (HEALTHY_S + 0.2)
            budget = NOISY_RATE * window + NOISY_RATE  # rate x time + the (divided) bursts
            print(f"\nlocal: noisy admitted {admitted} items during the outage, budget {budget:.0f}")
            assert abs(admitted - budget) <= 0.2 * budget
            assert {r.status for r in outage if r.tenant == "quiet"} == {200}

        print(f"{mode}: breakers closed {closed_after:.2f} s after Redis came back")
        assert closed_after <= 2.0
        # Shared enforcement again: the noisy tenant is limited by Redis, with its own limits back.
        assert 429 in {r.status for r in after if r.tenant == "noisy"}
        assert {r.status for r in after if r.tenant == "quiet"} == {200}
    finally:
        stack.close()
        distributor.stop()
        sync.stop()
        redis.stop()
        for server in restarted:
            server.stop()
