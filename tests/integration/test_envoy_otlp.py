"""OTLP writes (`/otlp/v1/metrics`) through a real Envoy rendered by `render-envoy`, to real
`mimir-rls` processes on real Redis and a recording upstream: over both ext_authz transports and
both charge modes, protobuf and JSON. Under the limit the write arrives once, byte-identical, with
its Content-Type and Content-Encoding; over it the client gets 429 with a google.rpc.Status body
and Retry-After.

N (what Mimir charges) is computed from the decoded request by tests/otlp_requests.py, not by the
product's counter."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator

import pytest
from google.rpc import status_pb2
from mimir_edge.contract import OTLP_PATH
from mimir_edge.core.limits import TenantLimits
from mimir_edge.deploy.envoy import DEFAULT_TRANSPORT, EnvoyOptions
from mimir_edge.localstack.envoy import EnvoyProcess
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.proto.opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc

from tests.integration.test_envoy_rls import metric_samples
from tests.otlp_requests import T0, Settings, every_point_type, mimir_charge, request, resource
from tests.recording_upstream import RecordingUpstream
from tests.stack import Stack, post, set_limits
from tests.unit.test_otlp import otlp_json

PROTOBUF, JSON = "application/x-protobuf", "application/json"
#: (charge, transport): every way Envoy can be rendered.
FORMS = [("check", "http"), ("check", "grpc"), ("ratelimit", "grpc")]
REQUEST = request(
    (resource(), every_point_type()),
    (resource("b", extra=0), every_point_type(with_sum=False, n_exemplars=0, t=T0 + 7 * 10**6)),
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    u = RecordingUpstream("distributor", keep_bodies=True).start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("envoy-otlp"))
    yield s
    s.close()


@pytest.fixture(scope="module", params=FORMS, ids=lambda form: "-".join(form))
def envoy(request, stack: Stack, redis_server: RedisServer, upstream: RecordingUpstream) -> EnvoyProcess:  # type: ignore[no-untyped-def]
    charge, transport = request.param
    replicas = [stack.add_rls({"REDIS_URL": redis_server.url, "LOG_LEVEL": "warning"}) for _ in range(2)]
    options = EnvoyOptions(
        rls=tuple(("127.0.0.1", r.authz_port(transport)) for r in replicas),
        upstream=upstream.address,
        charge=charge,
        # The default for the charge mode: http for check, grpc for ratelimit (an explicit grpc
        # run with charge check is the FORMS entry that sets it).
        authz_transport="" if transport == DEFAULT_TRANSPORT[charge] else transport,
        listen=("127.0.0.1", 0),
        admin=("127.0.0.1", 0),
    )
    assert options.authz_transport == transport
    return stack.add_envoy(options)


def charged(envoy: EnvoyProcess) -> int:
    """What the write costs: Mimir's count; with charge=ratelimit the check counts before the
    tenant's limits are known, so exemplars are charged too (docs/parity.md)."""
    return mimir_charge(REQUEST, Settings(exemplars_charged=envoy.options.charge == "ratelimit"))


def encoded(req: svc.ExportMetricsServiceRequest, content_type: str) -> bytes:
    return req.SerializeToString() if content_type == PROTOBUF else otlp_json(req)


def decode_status(content_type: str, body: bytes) -> tuple[int, str]:
    """A google.rpc.Status in the answer's declared format."""
    if content_type == PROTOBUF:
        status = status_pb2.Status.FromString(body)
        return status.code, status.message
    doc = json.loads(body)
    return doc["code"], doc["message"]


@pytest.mark.parametrize("encoding", ["", "gzip"])
@pytest.mark.parametrize("content_type", [PROTOBUF, JSON], ids=["protobuf", "json"])
def test_under_the_limit_the_write_arrives_once_byte_identical(
    envoy: EnvoyProcess, redis_server: RedisServer, upstream: RecordingUpstream, content_type: str, encoding: str
) -> None:
    n = charged(envoy)
    tenant = f"otlp-ok-{uuid.uuid4().hex[:10]}"
    # Exactly what Mimir charges: admitted only if Envoy's check counted the OTLP body as Mimir does.
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=0.0001, ingestion_burst_size=n))
    body = encoded(REQUEST, content_type)
    headers = {"content-type": content_type, "x-scope-orgid": tenant}
    if encoding:
        body = gzip.compress(body)
        headers["content-encoding"] = encoding
    reply = post(envoy.url, body, headers, path=OTLP_PATH)
    assert reply.status == 200, reply.body
    (seen,) = [s for s in upstream.seen if s.tenant == tenant]
    assert seen.path == OTLP_PATH and seen.body == body
    assert seen.headers["content-type"] == content_type
    assert seen.headers.get("content-encoding", "") == encoding


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON], ids=["protobuf", "json"])
def test_over_the_limit_is_429_with_a_status_body_and_retry_after(
    envoy: EnvoyProcess, redis_server: RedisServer, upstream: RecordingUpstream, content_type: str
) -> None:
    n = charged(envoy)
    tenant = f"otlp-over-{uuid.uuid4().hex[:10]}"
    # Room for the first write and half of the second: the refill (1 item/s) makes waiting help.
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=1, ingestion_burst_size=n + n // 2))
    body = encoded(REQUEST, content_type)
    headers = {"content-type": content_type, "x-scope-orgid": tenant}
    assert post(envoy.url, body, headers, path=OTLP_PATH).status == 200
    reply = post(envoy.url, body, headers, path=OTLP_PATH)
    assert reply.status == 429
    missing = n - n // 2
    assert missing - 1 <= int(reply.headers["retry-after"]) <= missing
    code, message = decode_status(reply.headers["content-type"], reply.body)
    assert code == 8  # ResourceExhausted
    assert "err-mimir-tenant-max-ingestion-rate" in message
    # With charge=ratelimit Envoy's rate limit filter answers (its message cannot name the limit's
    # value); the RLS names the limit in the reason header either way.
    assert reply.headers["x-mimir-edge-reason"] == "ingestion_rate"
    if envoy.options.charge == "ratelimit":
        assert reply.headers["x-envoy-ratelimited"] == "true"
    assert len([s for s in upstream.seen if s.tenant == tenant]) == 1


def decisions(stack: Stack) -> dict[tuple[str, str], float]:
    """(protocol, decision) → rls_decisions_total summed over every replica of the stack."""
    out: dict[tuple[str, str], float] = {}
    for rls in stack.rls:
        for (name, labels), value in metric_samples(rls.metrics_url).items():
            if name == "rls_decisions_total":
                label = dict(labels)
                key = (label["protocol"], label["decision"])
                out[key] = out.get(key, 0) + value
    return out


def test_every_form_records_the_decisions_as_otlp(
    envoy: EnvoyProcess, stack: Stack, redis_server: RedisServer, upstream: RecordingUpstream
) -> None:
    """With charge=ratelimit the protocol reaches ShouldRateLimit as a descriptor entry taken from
    the Check's metadata; without it the decisions were recorded as remote_write."""
    n = charged(envoy)
    tenant = f"otlp-label-{uuid.uuid4().hex[:10]}"
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=0.0001, ingestion_burst_size=n))
    headers = {"content-type": PROTOBUF, "x-scope-orgid": tenant}
    before = decisions(stack)
    assert post(envoy.url, REQUEST.SerializeToString(), headers, path=OTLP_PATH).status == 200
    assert post(envoy.url, REQUEST.SerializeToString(), headers, path=OTLP_PATH).status == 429
    after = decisions(stack)
    changed = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert changed == {("otlp", "allowed"): 1, ("otlp", "denied"): 1}
