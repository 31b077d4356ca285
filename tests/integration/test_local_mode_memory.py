"""FAILURE_MODE=local during a Redis outage, under a flood of random tenant ids (the id is a client
header): the replica's memory stays flat.

Driven in-process through the real ext_authz Check servicer wired as `rls/server.py` wires it
(enforcer, circuit breaker, local limiter, metrics, the stats recorder with its flush loop running),
with Redis really unreachable: nothing listens on its port, so every decision takes the local path.
A gRPC round trip per id would only add grpcio's ~0.5 ms of CPU per call.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator

import pytest
import structlog
from envoy.service.auth.v3 import external_auth_pb2 as authz
from google.rpc import code_pb2
from mimir_edge import logs
from mimir_edge.admin.stats import StatsRecorder
from mimir_edge.core.errors import StoreUnavailable
from mimir_edge.core.verdict import Cause, Outcome
from mimir_edge.localstack.processes import free_port
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request
from mimir_edge.rls.defaults import DefaultsCache
from mimir_edge.rls.enforcer import Enforcer, EnforcerConfig, FailureMode
from mimir_edge.rls.ext_authz import AuthorizationServicer
from mimir_edge.rls.local import LocalLimiter
from mimir_edge.rls.metrics import RlsMetrics
from mimir_edge.rls.settings import parse_settings
from mimir_edge.store.breaker import CircuitBreaker
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import RedisConfig, connect
from mimir_edge.store.limits import LimitsStore

#: The bound under test (LOCAL_MAX_TENANTS), small so the flood is many times over it.
LRU_BOUND = 1_000
#: Ids before the first measurement: the LRU full and evicting, the stats recorder at its tenant
#: cap, a few failed flushes done, the allocator's pools at their working size.
WARM_UP_IDS = 10 * LRU_BOUND
#: Distinct ids after it. The issue asks for 1 M: with this set to 1_000_000 the test passes
#: (measured: RSS 105.1 MB before, 104.9 MB after) but takes ~9 minutes on a loaded 2-core machine,
#: where one Check in-process costs 0.1-0.5 ms (parsing the body, metrics, stats, the
#: CheckResponse). 60 k ids, 60 times the bound, take ~30 s and tell the fix from the bug: measured
#: over them, RSS grew 0.0 MB; 16.9 MB with unbounded local buckets (~300 bytes per tenant); 21.7 MB
#: with stats merged back past their tenant cap after each failed flush.
DISTINCT_IDS = 60_000
#: Room for allocator noise, well under what either leak adds.
MAX_GROWTH_BYTES = 6 << 20
#: Let the flush loop and the breaker's probe run now and then, as between real calls.
YIELD_EVERY = 500


def rss_bytes() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    # Allowed decisions are logged at debug: unconfigured, structlog would print every one.
    logs.configure("json", "warning")
    yield
    structlog.reset_defaults()


# tenacity 9.2 deprecates the `initial` of wait_exponential_jitter that the breaker's probe uses
# (tenacity>=9.0 is allowed, and 9.0 has no `multiplier`); only a warning outside pytest.
@pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated:DeprecationWarning")
async def test_random_tenant_ids_during_an_outage_do_not_grow_the_replica(quiet_logs: None) -> None:
    settings = parse_settings(
        ["--failure-mode", "local", "--local-max-tenants", str(LRU_BOUND)],
        env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},  # nothing listens there
    )
    assert settings.failure_mode is FailureMode.LOCAL and settings.local_max_tenants == LRU_BOUND
    redis = connect(settings.redis)
    store = BucketStore.for_config(settings.redis, redis)
    metrics = RlsMetrics(max_tenants=settings.metrics_max_tenants)
    stats = StatsRecorder(redis, replica_id="memory-test")
    local = LocalLimiter(lambda: 3, max_tenants=settings.local_max_tenants)
    breaker = CircuitBreaker(store.ping)
    enforcer = Enforcer(
        store,
        DefaultsCache(LimitsStore(redis)),
        metrics,
        EnforcerConfig(
            tenant_header=settings.tenant_header,
            max_request_bytes=settings.max_request_bytes,
            shadow=settings.enforcement_disabled,
            failure_mode=settings.failure_mode,
        ),
        breaker=breaker,
        local=local,
        stats=stats,
    )
    servicer = AuthorizationServicer(enforcer, metrics)
    template = authz.CheckRequest()
    template.attributes.request.http.headers.update(RW1_HEADERS)
    template.attributes.request.http.raw_body = compress(rw1_request(Shape(series=2)))
    wire = template.SerializeToString()
    flusher = asyncio.create_task(stats.run())

    async def flood(first: int, count: int) -> None:
        for i in range(first, first + count):
            # A message of its own per call, parsed from the wire as grpc does: one message whose
            # header is set again and again keeps every value in its arena (~56 MB per 1 M).
            request = authz.CheckRequest.FromString(wire)
            request.attributes.request.http.headers[settings.tenant_header] = f"flood-{i}"
            reply = await servicer.Check(request, None)
            assert reply.status.code == code_pb2.OK, reply
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    try:
        await flood(0, WARM_UP_IDS)
        # Redis is really away: the breaker opened, a flush fails (and keeps its counts).
        assert breaker.open
        with pytest.raises(StoreUnavailable):
            await stats.flush()
        before = rss_bytes()
        await flood(WARM_UP_IDS, DISTINCT_IDS)
        after = rss_bytes()
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
        await breaker.close()
        await store.close()
        await redis.aclose()
    local_decisions = metrics.registry.get_sample_value("rls_local_decisions_total", {"decision": "allowed"})
    assert local_decisions == WARM_UP_IDS + DISTINCT_IDS  # every id decided by the local limiter
    growth = after - before
    print(f"RSS {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB over {DISTINCT_IDS} new tenant ids")
    assert growth <= MAX_GROWTH_BYTES, f"RSS grew {growth / 1e6:.1f} MB over {DISTINCT_IDS} new tenant ids"
    assert local.tenants == LRU_BOUND


async def test_stats_kept_through_failed_flushes_stay_within_the_tenant_cap() -> None:
    """Each flush admits `max_tenants` fresh tenants; counts merged back after a failed flush go
    through the same cap, else every failed flush of an outage added `max_tenants` more."""
    cap = 100
    connections: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await connections.put(writer)  # a Redis that takes the call and never answers

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    redis = connect(RedisConfig(url=f"redis://127.0.0.1:{port}/0", timeout_s=30.0))
    stats = StatsRecorder(redis, replica_id="cap-test", max_tenants=cap)
    try:
        for round_ in range(5):
            for i in range(cap):
                stats.record(f"before-{round_}-{i}", Outcome.DENIED, Cause.INGESTION_RATE, 10)
            flush = asyncio.create_task(stats.flush())
            connection = await asyncio.wait_for(connections.get(), timeout=30)
            # New tenants decided while the flush waits for Redis...
            for i in range(cap):
                stats.record(f"during-{round_}-{i}", Outcome.DENIED, Cause.INGESTION_RATE, 10)
            connection.close()  # ...then Redis goes away mid-call.
            with pytest.raises(StoreUnavailable):
                await flush
            assert stats.pending_tenants <= cap + 1, f"round {round_}: {stats.pending_tenants} tenants kept"
        assert stats.flush_errors == 5
    finally:
        await redis.aclose()
        server.close()
        await server.wait_closed()
