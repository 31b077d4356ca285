"""The RLS process on its own (no Envoy): ShouldRateLimit semantics over gRPC, readiness that
waits for Redis, graceful shutdown on SIGTERM, and decision log lines."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2 as common
from envoy.service.ratelimit.v3 import rls_pb2 as rls
from envoy.service.ratelimit.v3 import rls_pb2_grpc as rls_grpc
from google.protobuf import wrappers_pb2
from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.processes import free_port
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import grpc_serving
from mimir_edge.localstack.sync import http_get

from tests.stack import Stack, set_limits
from tests.waiting import wait_for

OK, OVER = rls.RateLimitResponse.OK, rls.RateLimitResponse.OVER_LIMIT
HOUR = rls.RateLimitResponse.RateLimit.HOUR

# One token an hour. These tests assert exact token counts across calls to a real process that
# takes the time from Redis, so the counts must not depend on how long the calls take: at this rate
# even a test stalled for 60 s on a loaded machine refills 60/3600 < 1 token, and every count
# below (remaining, allowed or denied) is the same as with a frozen clock.
PER_HOUR = 1 / 3600


def descriptor(*entries: tuple[str, str], hits: int | None = None) -> common.RateLimitDescriptor:
    d = common.RateLimitDescriptor(entries=[common.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries])
    if hits is not None:
        d.hits_addend.CopyFrom(wrappers_pb2.UInt64Value(value=hits))
    return d


@pytest.fixture
def stack(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Stack(tmp_path)
    yield s
    s.close()


def test_should_rate_limit_descriptors(stack: Stack, redis_server: RedisServer) -> None:
    rls_process = stack.add_rls({"REDIS_URL": redis_server.url})
    tenant = f"srl-{uuid.uuid4().hex[:8]}"
    set_limits(
        redis_server.url,
        tenant,
        TenantLimits(request_rate=PER_HOUR, request_burst_size=5, ingestion_rate=PER_HOUR, ingestion_burst_size=1000),
    )
    with grpc.insecure_channel(rls_process.grpc_addr) as channel:
        stub = rls_grpc.RateLimitServiceStub(channel)

        def call(*descriptors: common.RateLimitDescriptor, hits_addend: int = 0) -> rls.RateLimitResponse:
            return stub.ShouldRateLimit(
                rls.RateLimitRequest(domain="mimir-edge", descriptors=descriptors, hits_addend=hits_addend), timeout=5
            )

        # request descriptor (hits from the request: 0 → 1), items descriptor, an unknown one
        reply = call(
            descriptor(("tenant", tenant)),
            descriptor(("tenant", tenant), hits=400),
            descriptor(("path", "/api/v1/push")),
        )
        assert reply.overall_code == OK
        req, items, unknown = reply.statuses
        assert (req.code, items.code, unknown.code) == (OK, OK, OK)
        assert (req.current_limit.requests_per_unit, req.current_limit.unit) == (1, HOUR)
        assert req.limit_remaining == 4
        assert items.current_limit.requests_per_unit == 1 and items.limit_remaining == 600
        assert items.duration_until_reset.seconds == 400 * 3600  # 400 items to refill at one an hour
        assert not unknown.HasField("current_limit")

        # request-level hits_addend charges the request bucket: 4 left, asking for 5 → over
        reply = call(descriptor(("tenant", tenant)), descriptor(("tenant", tenant), hits=1), hits_addend=5)
        assert reply.overall_code == OVER
        assert [s.code for s in reply.statuses] == [OVER, OK]  # the request limit decided
        assert reply.statuses[0].duration_until_reset.ToMicroseconds() > 0

        # all or nothing: the items were not charged by the denied call
        reply = call(descriptor(("tenant", tenant), hits=600))
        assert reply.overall_code == OK and reply.statuses[0].limit_remaining == 0
        reply = call(descriptor(("tenant", tenant), hits=600))
        assert reply.overall_code == OVER and reply.statuses[0].code == OVER

    metrics = urlopen_text(rls_process.metrics_url)
    assert "rls_unknown_descriptors_total 1.0" in metrics


def urlopen_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


def api(rls_process, path: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def,type-arg]
    status, body = http_get(f"http://127.0.0.1:{rls_process.admin_port}{path}")
    return status, json.loads(body)


def test_not_serving_until_redis_is_reached(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    rls_process = stack.add_rls({"REDIS_URL": f"redis://127.0.0.1:{port}/0"}, wait_serving=False)
    assert rls_process.process is not None
    log_path = rls_process.process.log_path
    # Not a fixed sleep: the state to check is the one after the RLS has tried Redis and retried.
    wait_for(
        lambda: log_path.read_text().count('"default limits not refreshed"') >= 2,
        timeout_s=30,
        what="two failed attempts to read the defaults from the absent Redis",
    )
    assert not grpc_serving(rls_process.grpc_addr)
    assert api(rls_process, "/api/health") == (200, {"status": "ok"})
    status, state = api(rls_process, "/api/ready")
    assert status == 503 and state["serving"] is False and state["defaults_loaded"] is False
    redis = RedisServer(tmp_path / "late-redis", port=port).start()
    try:
        wait_for(lambda: grpc_serving(rls_process.grpc_addr), what="SERVING after Redis came up")
        status, state = api(rls_process, "/api/ready")
        assert status == 200 and state["ready"] is True and state["redis_breaker"] == "closed"
        # Redis goes away: checks take the failure path, the breaker opens, /api/ready says so.
        redis.kill()
        with grpc.insecure_channel(rls_process.grpc_addr) as channel:
            stub = rls_grpc.RateLimitServiceStub(channel)
            for _ in range(5):
                stub.ShouldRateLimit(rls.RateLimitRequest(descriptors=[descriptor(("tenant", "t"))]), timeout=5)
        status, state = api(rls_process, "/api/ready")
        assert status == 200 and state["redis_breaker"] == "open" and state["ready"] is False
        assert "rls_redis_breaker_open 1.0" in urlopen_text(rls_process.metrics_url)
    finally:
        redis.stop()


def test_sigterm_stops_cleanly(stack: Stack, redis_server: RedisServer) -> None:
    rls_process = stack.add_rls({"REDIS_URL": redis_server.url})
    assert rls_process.process is not None and rls_process.process.popen is not None
    popen = rls_process.process.popen
    rls_process.process.terminate()
    assert popen.wait(timeout=15) == 0
    events = [
        json.loads(line)["event"]
        for line in rls_process.process.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert events[-2:] == ["rls stopping: not serving, draining in-flight calls", "rls stopped"]


def test_denials_are_logged_as_json_without_bodies(stack: Stack, redis_server: RedisServer) -> None:
    rls_process = stack.add_rls({"REDIS_URL": redis_server.url})
    tenant = f"logged-{uuid.uuid4().hex[:8]}"
    set_limits(redis_server.url, tenant, TenantLimits(request_rate=PER_HOUR, request_burst_size=1))
    with grpc.insecure_channel(rls_process.grpc_addr) as channel:
        stub = rls_grpc.RateLimitServiceStub(channel)
        for _ in range(2):
            stub.ShouldRateLimit(rls.RateLimitRequest(descriptors=[descriptor(("tenant", tenant))]), timeout=5)
    assert rls_process.process is not None
    lines = [json.loads(line) for line in rls_process.process.log_path.read_text().splitlines() if line.startswith("{")]
    denials = [line for line in lines if line.get("event") == "decision" and line.get("tenant") == tenant]
    assert len(denials) == 1
    assert denials[0]["decision"] == "denied" and denials[0]["reason"] == "request_rate"
    assert denials[0]["request_rate"] == PER_HOUR and denials[0]["level"] == "info"
