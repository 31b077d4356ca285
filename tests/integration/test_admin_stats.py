"""Cluster-wide statistics at the store level, on standalone Redis and on a real 6-node Cluster:
two recorders (two replicas) flush into the same buckets and any reader sees the sum; an outage
delays statistics but loses none; emergency overrides round-trip on both topologies."""

from __future__ import annotations

import time
import uuid

import pytest
from mimir_edge.admin import overrides
from mimir_edge.admin.stats import StatsRecorder
from mimir_edge.admin.view import FleetView
from mimir_edge.core.errors import StoreUnavailable
from mimir_edge.core.limits import MIMIR_DEFAULTS
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.core.verdict import Cause, Outcome, WriteProtocol
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.store.client import Redis, RedisConfig, connect, connect_sync


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def test_two_recorders_add_up_whichever_topology(redis: Redis, redis_config: RedisConfig) -> None:
    busy, quiet = tenant(), tenant()
    limits = BucketLimits.from_tenant_limits(MIMIR_DEFAULTS)
    one = StatsRecorder(redis, replica_id="one")
    two = StatsRecorder(redis, replica_id="two")
    for _ in range(7):
        one.record(busy, Outcome.ALLOWED, Cause.ALLOWED, 100)
    for _ in range(5):
        two.record(busy, Outcome.DENIED, Cause.INGESTION_RATE, 100, limits)
    two.record(busy, Outcome.SHADOW_DENIED, Cause.REQUEST_RATE, 3, limits)
    one.record(quiet, Outcome.ALLOWED, Cause.ALLOWED, 1)
    await one.flush()
    await two.flush()

    view = FleetView(connect_sync(redis_config), cluster=bool(redis_config.cluster_nodes))
    detail = view.tenant(busy, 600)
    requests, items = detail["totals"]["requests"], detail["totals"]["items"]
    assert (requests["allowed"], requests["denied"], requests["shadow_denied"], requests["total"]) == (7, 5, 1, 13)
    assert (items["allowed"], items["denied"], items["shadow_denied"]) == (700, 500, 3)
    assert detail["totals"]["not_allowed_by_reason"] == {"ingestion_rate": 5, "request_rate": 1}
    assert view.tenant(quiet, 600)["totals"]["requests"]["total"] == 1
    denials = {(d["tenant"], d["reason"]): d for d in view.denials(1000)}
    assert denials[(busy, "ingestion_rate")]["replica"] == "two"
    assert denials[(busy, "ingestion_rate")]["limits"]["ingestion_rate"] == limits.ingestion_rate
    rows = {
        r["tenant"]: r
        for r in view.tenants(query=busy, sort="tenant", descending=False, page=1, per_page=50, window_s=600)["tenants"]
    }
    assert rows[busy]["window"]["would_deny_requests"] == 6


async def test_counts_are_split_by_protocol_for_the_tenant_and_the_fleet(
    redis: Redis, redis_config: RedisConfig
) -> None:
    t = tenant()
    one = StatsRecorder(redis, replica_id="one")
    two = StatsRecorder(redis, replica_id="two")
    for _ in range(3):
        one.record(t, Outcome.ALLOWED, Cause.ALLOWED, 10, protocol=WriteProtocol.OTLP)
    two.record(t, Outcome.DENIED, Cause.INGESTION_RATE, 7, protocol=WriteProtocol.OTLP)
    two.record(t, Outcome.ALLOWED, Cause.ALLOWED, 5, protocol=WriteProtocol.REMOTE_WRITE)
    one.record(None, Outcome.REJECTED, Cause.MISSING_TENANT, 0, protocol=WriteProtocol.OTLP)
    view = FleetView(connect_sync(redis_config), cluster=bool(redis_config.cluster_nodes))
    fleet_before = view.overview(600, "test")["totals"]["by_protocol"]
    await one.flush()
    await two.flush()

    split = view.tenant(t, 600)["totals"]["by_protocol"]
    assert (split["otlp"]["requests"]["allowed"], split["otlp"]["requests"]["denied"]) == (3, 1)
    assert (split["otlp"]["items"]["allowed"], split["otlp"]["items"]["denied"], split["otlp"]["items"]["total"]) == (
        30,
        7,
        37,
    )
    assert (split["remote_write"]["requests"]["total"], split["remote_write"]["items"]["allowed"]) == (1, 5)
    fleet = view.overview(600, "test")["totals"]["by_protocol"]
    # Other tests share this Redis: the fleet moved by exactly what these recorders added.
    assert fleet["otlp"]["requests"]["total"] - fleet_before["otlp"]["requests"]["total"] == 5
    assert fleet["otlp"]["requests"]["rejected"] - fleet_before["otlp"]["requests"]["rejected"] == 1
    assert fleet["remote_write"]["items"]["total"] - fleet_before["remote_write"]["items"]["total"] == 5


async def test_flush_during_an_outage_keeps_the_counts(redis_server: RedisServer) -> None:
    redis_config = RedisConfig(url=redis_server.url, timeout_s=30.0)
    t = tenant()
    dead = connect(RedisConfig(url="redis://127.0.0.1:1/0", timeout_s=0.2))
    recorder = StatsRecorder(dead, replica_id="r")
    recorder.record(t, Outcome.ALLOWED, Cause.ALLOWED, 10, protocol=WriteProtocol.OTLP)
    with pytest.raises(StoreUnavailable):
        await recorder.flush()
    recorder.record(t, Outcome.ALLOWED, Cause.ALLOWED, 10)
    await dead.aclose()
    live = connect(redis_config)
    recorder._redis = live  # the same recorder, Redis back
    await recorder.flush()
    await live.aclose()
    view = FleetView(connect_sync(redis_config), cluster=False)
    totals = view.tenant(t, 600)["totals"]
    assert totals["items"]["allowed"] == 20
    # Kept through the failed flush under the protocol it came in over.
    assert (
        totals["by_protocol"]["otlp"]["items"]["allowed"],
        totals["by_protocol"]["remote_write"]["items"]["allowed"],
    ) == (10, 10)
    assert recorder.flush_errors == 1


def test_emergency_override_round_trip(redis_config: RedisConfig) -> None:
    client = connect_sync(redis_config)
    t = tenant()
    current = BucketLimits(request_rate=0, request_burst=0, ingestion_rate=10_000, ingestion_burst=200_000)
    parsed = overrides.parse_override(t, {"ttl_seconds": 60, "reason": "test", "ingestion_rate": 500}, current)
    assert parsed.limits == {"ingestion_rate": 500.0, "ingestion_burst": 10_000}
    put_at = time.monotonic()
    overrides.put_override(client, parsed, by="tester")
    found = overrides.get_override(client, t)
    apart = time.monotonic() - put_at  # the TTL ran down by at most this much (0.05: its rounding)
    assert found is not None and found["by"] == "tester"
    assert 60 - apart - 0.05 <= found["expires_in_s"] <= 60, (found["expires_in_s"], apart)
    assert t in [o["tenant"] for o in overrides.list_overrides(client)]
    assert overrides.delete_override(client, t) is True
    assert overrides.get_override(client, t) is None
    for bad, message in (
        ({"reason": "x"}, "ttl_seconds"),
        ({"ttl_seconds": 0, "reason": "x"}, "ttl_seconds"),
        ({"ttl_seconds": 10, "reason": "  "}, "reason"),
        ({"ttl_seconds": 10, "reason": "x", "mode": "off"}, "mode"),
        ({"ttl_seconds": 10, "reason": "x", "ingestion_rate": -1}, "ingestion_rate"),
        ({"ttl_seconds": 10, "reason": "x", "ingestion_burst_size": 1.5}, "whole"),
        ({"ttl_seconds": 10, "reason": "x", "surprise": 1}, "unknown"),
        ([], "object"),
    ):
        with pytest.raises(overrides.InvalidOverride, match=message):
            overrides.parse_override(t, bad, current)
    client.close()
