"""One of three RLS replicas SIGKILLed under steady load behind real Envoy, whose generated
config retries the check on another replica and ejects the dead one: no client error, even with
Envoy's failure_mode_allow off (so nothing is hidden by admitting on error)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.localstack.distributor import StandInDistributor
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.traffic import Shape, compress, rw1_request

from tests.load import drive
from tests.stack import Stack

SECONDS, KILL_AT = 10.0, 3.0


def test_killing_a_replica_costs_no_request(tmp_path: Path, redis_server: RedisServer) -> None:
    distributor = StandInDistributor().start()
    stack = Stack(tmp_path)
    try:
        replicas = [stack.add_rls({"REDIS_URL": redis_server.url, "LOG_LEVEL": "warning"}) for _ in range(3)]
        envoy = stack.add_envoy(
            EnvoyOptions(
                rls=tuple(("127.0.0.1", r.grpc_port) for r in replicas),
                upstream=("127.0.0.1", distributor.port),
                listen=("127.0.0.1", 0),
                admin=("127.0.0.1", 0),
                failure_mode_allow=False,
            )
        )
        body = compress(rw1_request(Shape(series=100)))
        results = asyncio.run(drive(envoy.url, {"steady": (body, 150.0)}, SECONDS, [(KILL_AT, replicas[1].kill)]))
        statuses: dict[int, int] = {}
        for r in results:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        after_kill = [r for r in results if r.at >= KILL_AT]
        print(f"\n{len(results)} requests, {len(after_kill)} after the kill: {statuses}")
        assert statuses == {200: len(results)}
        assert len(after_kill) > 900
        stats = dict(line.split(": ", 1) for line in envoy.stats().splitlines() if line.startswith("cluster.rls."))
        print(
            {
                k: v
                for k, v in stats.items()
                if any(
                    w in k for w in ("retry", "health_check.failure", "ejections_enforced_total", "membership_healthy")
                )
            }
        )
        # The checks caught by the kill were retried on another replica, and the dead one left.
        assert int(stats["cluster.rls.upstream_rq_retry_success"]) >= 1
        assert int(stats["cluster.rls.membership_healthy"]) == 2
    finally:
        stack.close()
        distributor.stop()
