"""A 6-node Redis Cluster loses the master that owns a hot tenant, under load: the RLS does not
crash or restart, decisions resume within 10 s (node timeout 3 s), and the tenant's budget is
overshot by at most one burst (writes the old master had not yet replicated)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import redis.cluster as sync_cluster
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import code_pb2
from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import bucket_key, encode_limits, limits_key
from mimir_edge.localstack.redis import RedisCluster
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

from tests.stack import Stack

TENANT = "hot-tenant"
RATE, BURST, ITEMS = 2000, 2000, 50
SECONDS, KILL_AT = 22.0, 5.0


def test_master_failover_under_load(tmp_path: Path) -> None:
    cluster = RedisCluster(tmp_path / "cluster").start()
    stack = Stack(tmp_path)
    try:
        admin = sync_cluster.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
        admin.hset(
            limits_key(TENANT),
            mapping=dict(
                encode_limits(  # type: ignore[arg-type]
                    TenantLimits(ingestion_rate=RATE, ingestion_burst_size=BURST)
                )
            ),
        )
        owner = admin.get_node_from_key(bucket_key(TENANT))
        victim = next(n for n in cluster.nodes if n.port == owner.port)
        admin.close()
        rls = stack.add_rls(
            {"REDIS_CLUSTER_NODES": cluster.startup_nodes, "FAILURE_MODE": "deny", "LOG_LEVEL": "warning"}
        )

        request = authz.CheckRequest()
        request.attributes.request.http.headers.update({**RW1_HEADERS, "x-scope-orgid": TENANT})
        request.attributes.request.http.raw_body = compress(rw1_request(Shape(series=ITEMS)))
        outcomes: list[tuple[float, str]] = []

        async def load() -> None:
            async with grpc.aio.insecure_channel(rls.grpc_addr) as channel:
                stub = authz_grpc.AuthorizationStub(channel)
                start = time.monotonic()

                async def worker() -> None:
                    while (now := time.monotonic() - start) < SECONDS:
                        reply = await stub.Check(request, timeout=5)
                        if reply.status.code == code_pb2.OK:
                            outcomes.append((now, "ok"))
                        else:
                            outcomes.append((now, str(reply.denied_response.status.code)))
                        await asyncio.sleep(0.002)

                async def killer() -> None:
                    await asyncio.sleep(KILL_AT)
                    victim.kill()

                await asyncio.gather(killer(), *(worker() for _ in range(8)))

        asyncio.run(load())
        assert rls.process is not None and rls.process.running(), "the RLS must survive the failover"

        unavailable = [t for t, o in outcomes if o == "503"]
        after_kill = [(t, o) for t, o in outcomes if t > KILL_AT]
        resumed_at = next(t for t, o in after_kill if o != "503" and t > (max(unavailable) if unavailable else 0))
        admitted = sum(ITEMS for _, o in outcomes if o == "ok")
        budget = BURST + RATE * SECONDS
        print(
            f"\n503s {len(unavailable)} from {min(unavailable, default=0):.2f}s to "
            f"{max(unavailable, default=0):.2f}s; decisions resumed {resumed_at - KILL_AT:.2f}s after the kill; "
            f"admitted {admitted} items, budget {budget}"
        )
        assert max(unavailable, default=KILL_AT) - KILL_AT <= 10.0
        assert {o for t, o in after_kill if t > KILL_AT + 10.0} <= {"ok", "429"}
        assert admitted <= budget + BURST
        assert 429 in {int(o) for _, o in after_kill if o.isdigit()}, "enforcement after the failover"
    finally:
        stack.close()
        cluster.stop()
