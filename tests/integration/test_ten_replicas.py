"""One budget, ten replicas: 10 `mimir-rls` processes on one Redis (and on a 6-node Cluster),
traffic spread unevenly, one noisy tenant: admitted items stay within 1 % of rate × T + burst,
and a second tenant is unaffected."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import code_pb2
from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import encode_limits, limits_key
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request
from mimir_edge.store.client import RedisConfig, connect

REPLICAS = 10
DURATION_S = 10.0
WORKERS = 24
NOISY_RATE, NOISY_BURST, NOISY_ITEMS = 4000, 4000, 50
QUIET_RATE, QUIET_ITEMS, QUIET_RPS = 10_000, 50, 20
# Replica 0 gets half of all calls, the other nine share the rest.
WEIGHTS = [9] + [1] * (REPLICAS - 1)


def _env(config: RedisConfig) -> dict[str, str]:
    if config.cluster_nodes:
        return {"REDIS_CLUSTER_NODES": ",".join(f"{h}:{p}" for h, p in config.cluster_nodes)}
    return {"REDIS_URL": config.url}


@pytest.fixture
def replicas(redis_config: RedisConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RlsProcess]]:
    workdir = tmp_path_factory.mktemp("replicas")
    processes = [RlsProcess(workdir, env=_env(redis_config) | {"LOG_LEVEL": "warning"}) for _ in range(REPLICAS)]
    try:
        with ThreadPoolExecutor(REPLICAS) as pool:
            list(pool.map(lambda p: p.start(timeout_s=60), processes))
        yield processes
    finally:
        for p in processes:
            p.stop()


def check_request(tenant: str, body: bytes) -> authz.CheckRequest:
    request = authz.CheckRequest()
    http = request.attributes.request.http
    http.headers.update({**RW1_HEADERS, "x-scope-orgid": tenant})
    http.raw_body = body
    return request


async def test_ten_replicas_enforce_one_shared_budget(replicas: list[RlsProcess], redis_config: RedisConfig) -> None:
    noisy, quiet = f"noisy-{uuid.uuid4().hex[:8]}", f"quiet-{uuid.uuid4().hex[:8]}"
    admin = connect(redis_config)
    await admin.hset(
        limits_key(noisy),
        mapping=dict(encode_limits(TenantLimits(ingestion_rate=NOISY_RATE, ingestion_burst_size=NOISY_BURST))),
    )  # type: ignore[arg-type]
    await admin.hset(
        limits_key(quiet),
        mapping=dict(encode_limits(TenantLimits(ingestion_rate=QUIET_RATE, ingestion_burst_size=QUIET_RATE))),
    )  # type: ignore[arg-type]
    await admin.aclose()

    channels = [grpc.aio.insecure_channel(r.grpc_addr) for r in replicas]
    stubs = [authz_grpc.AuthorizationStub(c) for c in channels]
    noisy_request = check_request(noisy, compress(rw1_request(Shape(series=NOISY_ITEMS))))
    quiet_request = check_request(quiet, compress(rw1_request(Shape(series=QUIET_ITEMS))))
    # Connections up before the clock starts, so the window below is all decisions.
    await asyncio.gather(
        *(stub.Check(check_request("warm-up", noisy_request.attributes.request.http.raw_body)) for stub in stubs)
    )
    rng = random.Random(7)
    per_replica = [0] * REPLICAS
    tally = {"noisy_ok": 0, "noisy_denied": 0, "quiet_ok": 0, "quiet_denied": 0}
    deadline = time.monotonic() + DURATION_S
    # Every decision falls between the first send and the last answer (the outer window), and the
    # bucket was being spent from the first answer to the last send (the inner window). A loaded
    # host widens the gap between the two, never the bracket's validity.
    first_sent: list[float] = []
    first_received: list[float] = []
    last_sent = [0.0]
    last_received = [0.0]

    async def noisy_worker() -> None:
        while time.monotonic() < deadline:
            i = rng.choices(range(REPLICAS), WEIGHTS)[0]
            per_replica[i] += 1
            last_sent[0] = time.monotonic()
            if not first_sent:
                first_sent.append(last_sent[0])
            reply = await stubs[i].Check(noisy_request, timeout=30)
            last_received[0] = time.monotonic()
            if not first_received:
                first_received.append(last_received[0])
            tally["noisy_ok" if reply.status.code == code_pb2.OK else "noisy_denied"] += 1

    async def quiet_worker() -> None:
        while time.monotonic() < deadline:
            reply = await stubs[rng.randrange(REPLICAS)].Check(quiet_request, timeout=30)
            tally["quiet_ok" if reply.status.code == code_pb2.OK else "quiet_denied"] += 1
            await asyncio.sleep(1 / QUIET_RPS)

    await asyncio.gather(*(noisy_worker() for _ in range(WORKERS)), quiet_worker())
    outer = last_received[0] - first_sent[0]
    inner = last_sent[0] - first_received[0]
    for channel in channels:
        await channel.close()

    admitted = tally["noisy_ok"] * NOISY_ITEMS
    budget, least = NOISY_BURST + NOISY_RATE * outer, NOISY_BURST + NOISY_RATE * inner
    print(
        f"\nreplicas={REPLICAS} calls per replica={per_replica} elapsed={inner:.2f}..{outer:.2f}s tally={tally} "
        f"admitted={admitted} budget={least:.0f}..{budget:.0f} ratio={admitted / budget:.4f}"
    )
    assert tally["noisy_denied"] > tally["noisy_ok"], "the noisy tenant must be pushed well over its limit"
    assert per_replica[0] > sum(per_replica[1:]) * 0.8, "traffic must be uneven"
    assert 0.99 * least <= admitted <= 1.01 * budget
    assert tally["quiet_denied"] == 0 and tally["quiet_ok"] > 0
