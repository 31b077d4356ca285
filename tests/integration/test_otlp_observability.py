"""What the RLS records about OTLP, on a real `mimir-rls` over real Redis: every decision, item and
refusal is counted under its write protocol in the RLS's metrics and in the fleet statistics the
admin API serves, on both ext_authz transports and through ShouldRateLimit (`charge=ratelimit`),
each figure equal to what this test sent and what the RLS answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2 as descriptor_pb2
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from envoy.service.ratelimit.v3 import rls_pb2 as rls_pb
from envoy.service.ratelimit.v3 import rls_pb2_grpc as rls_grpc
from google.protobuf import wrappers_pb2
from mimir_edge.contract import (
    CHARGE_BY_RATELIMIT,
    CHARGE_EXTENSION,
    METADATA_PROTOCOL,
    PROTOCOL_DESCRIPTOR_KEY,
    RATELIMIT_DOMAIN,
    TENANT_DESCRIPTOR_KEY,
)
from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

from tests.admin_fleet import api
from tests.integration.test_envoy_rls import metric_samples
from tests.integration.test_otlp_charging import PROTOBUF, REQUESTS, post
from tests.otlp_requests import mimir_charge
from tests.stack import Stack, set_limits
from tests.waiting import wait_for

#: Refill over the whole test is far below one item: which write passes is exact without a clock.
RATE = 0.0001
RW_SERIES = 40


@pytest.fixture(scope="module")
def rls(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[RlsProcess]:
    stack = Stack(tmp_path_factory.mktemp("otlp-obs"))
    yield stack.add_rls({"REDIS_URL": redis_server.url})
    stack.close()


def by_protocol(rls: RlsProcess) -> dict[tuple[str, str, str], float]:
    """(family, protocol, decision) → value, summed over the other labels, from a live /metrics."""
    out: dict[tuple[str, str, str], float] = {}
    for (name, labels), value in metric_samples(rls.metrics_url).items():
        if name in ("rls_decisions_total", "rls_items_total"):
            label = dict(labels)
            key = (name, label["protocol"], label["decision"])
            out[key] = out.get(key, 0) + value
    return out


def delta(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def tenant_totals(rls: RlsProcess, tenant: str, requests: int) -> dict[str, Any]:
    """The tenant's admin totals once all `requests` are flushed to Redis (about a second)."""

    def flushed() -> dict[str, Any] | None:
        totals: dict[str, Any] = api(rls.admin_url, f"/api/tenants/{tenant}?window=600")[1]["totals"]
        return totals if totals["requests"]["total"] == requests else None

    totals = wait_for(flushed, what=f"{requests} decisions of {tenant} in the admin statistics")
    assert totals is not None
    return totals


def test_decisions_items_and_refusals_are_counted_by_protocol(rls: RlsProcess, redis_server: RedisServer) -> None:
    req = REQUESTS["identifying-only-resource"]
    n = mimir_charge(req)
    tenant = f"obs-{uuid.uuid4().hex[:8]}"
    # Room for two OTLP writes and one remote_write: then both protocols are denied.
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=RATE, ingestion_burst_size=2 * n + RW_SERIES))
    rw = compress(rw1_request(Shape(series=RW_SERIES)))
    before = by_protocol(rls)

    otlp = [post(rls, tenant, req.SerializeToString(), {"content-type": PROTOBUF})[0] for _ in range(2)]
    rw_statuses = [post(rls, tenant, rw, dict(RW1_HEADERS), path="/api/v1/push")[0] for _ in range(3)]
    otlp.append(post(rls, tenant, req.SerializeToString(), {"content-type": PROTOBUF})[0])
    otlp.append(post(rls, tenant, b"\xff\xff\xff", {"content-type": PROTOBUF})[0])  # unreadable: rejected
    assert (otlp, rw_statuses) == ([200, 200, 429, 400], [200, 429, 429])

    assert delta(by_protocol(rls), before) == {
        ("rls_decisions_total", "otlp", "allowed"): 2,
        ("rls_decisions_total", "otlp", "denied"): 1,
        ("rls_decisions_total", "otlp", "rejected"): 1,
        ("rls_items_total", "otlp", "allowed"): 2 * n,
        ("rls_items_total", "otlp", "denied"): n,
        ("rls_decisions_total", "remote_write", "allowed"): 1,
        ("rls_decisions_total", "remote_write", "denied"): 2,
        ("rls_items_total", "remote_write", "allowed"): RW_SERIES,
        ("rls_items_total", "remote_write", "denied"): 2 * RW_SERIES,
    }

    totals = tenant_totals(rls, tenant, 7)
    split = totals["by_protocol"]
    assert {k: v for k, v in split["otlp"]["requests"].items() if v} == {
        "allowed": 2,
        "denied": 1,
        "rejected": 1,
        "total": 4,
    }
    assert {k: v for k, v in split["otlp"]["items"].items() if v} == {"allowed": 2 * n, "denied": n, "total": 3 * n}
    assert {k: v for k, v in split["remote_write"]["requests"].items() if v} == {"allowed": 1, "denied": 2, "total": 3}
    assert {k: v for k, v in split["remote_write"]["items"].items() if v} == {
        "allowed": RW_SERIES,
        "denied": 2 * RW_SERIES,
        "total": 3 * RW_SERIES,
    }
    # The split adds up to the totals it splits.
    for kind in ("requests", "items"):
        for outcome, value in totals[kind].items():
            assert split["otlp"][kind][outcome] + split["remote_write"][kind][outcome] == value


async def test_grpc_check_and_should_rate_limit_name_the_protocol(rls: RlsProcess, redis_server: RedisServer) -> None:
    """`charge=ratelimit`: Check only counts and hands the protocol to the rate limit filter in its
    dynamic metadata; a descriptor carrying it is recorded as OTLP."""
    req = REQUESTS["identifying-only-resource"]
    n = mimir_charge(req)
    tenant = f"obs-rl-{uuid.uuid4().hex[:8]}"
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=RATE, ingestion_burst_size=n))
    before = by_protocol(rls)
    async with grpc.aio.insecure_channel(rls.grpc_addr) as channel:
        check = authz.CheckRequest()
        http_request = check.attributes.request.http
        http_request.path = "/otlp/v1/metrics"
        http_request.headers.update({"content-type": PROTOBUF, "x-scope-orgid": tenant})
        http_request.raw_body = req.SerializeToString()
        check.attributes.context_extensions[CHARGE_EXTENSION] = CHARGE_BY_RATELIMIT
        answer = await authz_grpc.AuthorizationStub(channel).Check(check)
        assert answer.HasField("ok_response")
        assert answer.dynamic_metadata[METADATA_PROTOCOL] == "otlp"

        def descriptors(items: int) -> list[descriptor_pb2.RateLimitDescriptor]:
            entries = [
                descriptor_pb2.RateLimitDescriptor.Entry(key=TENANT_DESCRIPTOR_KEY, value=tenant),
                descriptor_pb2.RateLimitDescriptor.Entry(key=PROTOCOL_DESCRIPTOR_KEY, value="otlp"),
            ]
            return [
                descriptor_pb2.RateLimitDescriptor(entries=entries),
                descriptor_pb2.RateLimitDescriptor(entries=entries, hits_addend=wrappers_pb2.UInt64Value(value=items)),
            ]

        stub = rls_grpc.RateLimitServiceStub(channel)
        codes = []
        for _ in range(2):
            request = rls_pb.RateLimitRequest(domain=RATELIMIT_DOMAIN, descriptors=descriptors(n))
            reply = await stub.ShouldRateLimit(request)
            codes.append(reply.overall_code)
        unknown_before = metric_samples(rls.metrics_url)[("rls_unknown_descriptors_total", ())]
        # A protocol the RLS does not know, or another second entry: not a tenant descriptor.
        odd = [
            descriptor_pb2.RateLimitDescriptor(
                entries=[
                    descriptor_pb2.RateLimitDescriptor.Entry(key=TENANT_DESCRIPTOR_KEY, value=tenant),
                    descriptor_pb2.RateLimitDescriptor.Entry(key=key, value=value),
                ]
            )
            for key, value in ((PROTOCOL_DESCRIPTOR_KEY, "carrier-pigeon"), ("path", "/otlp/v1/metrics"))
        ]
        reply = await stub.ShouldRateLimit(rls_pb.RateLimitRequest(domain=RATELIMIT_DOMAIN, descriptors=odd))
        assert [s.code for s in reply.statuses] == [rls_pb.RateLimitResponse.OK] * 2
        unknown_after = metric_samples(rls.metrics_url)[("rls_unknown_descriptors_total", ())]
        assert unknown_after - unknown_before == 2
    assert codes == [rls_pb.RateLimitResponse.OK, rls_pb.RateLimitResponse.OVER_LIMIT]
    # The counting Check records nothing itself: one request, one decision, under OTLP.
    assert delta(by_protocol(rls), before) == {
        ("rls_decisions_total", "otlp", "allowed"): 1,
        ("rls_decisions_total", "otlp", "denied"): 1,
        ("rls_items_total", "otlp", "allowed"): n,
        ("rls_items_total", "otlp", "denied"): n,
    }
    split = tenant_totals(rls, tenant, 2)["by_protocol"]
    assert (split["otlp"]["requests"]["total"], split["remote_write"]["requests"]["total"]) == (2, 0)
