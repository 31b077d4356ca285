"""Propagation: from an edit of the overrides file to enforcement by every RLS replica.

Real processes: redis-server, overrides-sync following the file with its default poll interval
(0.25 s), 3 `mimir-rls` replicas; 20 changes alternately lowering and raising a tenant's rate,
each timed until all three replicas answer by the new limit (probed directly over gRPC).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mimir_edge.localstack.propagation import HIGH_RATE, Prober, measure_changes, overrides_document, summary
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.sync import SyncProcess

TENANT = "bench-propagation"
CHANGES = 20


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-propagation-") as tmp:
        work = Path(tmp)
        path = work / "overrides.yaml"
        path.write_text(overrides_document(TENANT, HIGH_RATE))
        started: list[Any] = []
        try:
            redis = RedisServer(work / "redis").start()
            started.append(redis)
            started.append(
                SyncProcess(work, ["--source", "file", "--path", str(path), "--redis-url", redis.url]).start()
            )
            replicas = [
                RlsProcess(work, env={"REDIS_URL": redis.url, "LOG_LEVEL": "warning"}).start() for _ in range(3)
            ]
            started += replicas
            prober = Prober([r.grpc_addr for r in replicas], TENANT)
            try:
                changes = measure_changes(path, TENANT, prober, replicas=3, changes=CHANGES)
            finally:
                prober.close()
        finally:
            for process in reversed(started):
                process.stop()
    return {"poll_interval_s": 0.25, **summary(changes), "seconds": [round(c.seconds, 4) for c in changes]}


def render(result: dict[str, Any]) -> list[str]:
    return [
        "| changes | file poll interval | p50 | p99 | max | min |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {result['changes']} | {result['poll_interval_s']} s | {result['p50_ms']} ms | {result['p99_ms']} ms | "
        f"{result['max_ms']} ms | {result['min_ms']} ms |",
        "",
        "Every replica reads the tenant's limits inside the Lua call, so a change is in force on all of them "
        "the moment overrides-sync writes it; the time is the file poll plus the sync. With the Kubernetes "
        "source the poll is replaced by the watch event.",
    ]
