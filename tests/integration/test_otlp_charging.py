"""OTLP writes through the RLS's real Check path (a real `mimir-rls` on real Redis), over the HTTP
ext_authz transport and the gRPC one: charged at the exact burst boundary under each tenant
setting that changes the count, protobuf and JSON alike, sharing the budget with remote_write;
refusals in OTLP's shape.

The requests are built with the generated protobuf classes (the OpenTelemetry SDK is not in the
project's environment). N is computed here from the decoded request, point by point, by Mimir's
rules (tests/otlp_requests.py), never by the product's counter: a request needing N is admitted
under a burst of exactly N and refused under N - 1.
"""

from __future__ import annotations

import gzip
import http.client
import json
import uuid
from collections.abc import Iterator

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import status_pb2
from mimir_edge.contract import MIRROR_OTLP_PATH
from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request
from mimir_edge.proto.opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc

from tests.otlp_requests import T0, Settings, every_point_type, mimir_charge, request, resource
from tests.stack import Stack, set_limits
from tests.unit.test_otlp import otlp_json

#: Refill over the whole test is far below one item: the counts are exact without a clock.
RATE = 0.0001
PROTOBUF, JSON = "application/x-protobuf", "application/json"

REQUESTS = {
    "every-type-several-resources": request(
        (resource(), every_point_type()),
        (resource("b", instance=None, extra=0), every_point_type(t=T0 + 400 * 10**9)),
        (resource("c", extra=4), every_point_type(with_sum=False, n_exemplars=1, t=T0 + 7 * 10**6)),
    ),
    "identifying-only-resource": request((resource(extra=0), every_point_type(n_exemplars=0))),
}
SETTINGS = [
    Settings(),
    Settings(nhcb=True),
    Settings(native_delta=True),
    Settings(exemplars_charged=True),
    Settings(nhcb=True, native_delta=True, exemplars_charged=True),
]


@pytest.fixture(scope="module")
def rls(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[RlsProcess]:
    stack = Stack(tmp_path_factory.mktemp("otlp"))
    yield stack.add_rls({"REDIS_URL": redis_server.url})
    stack.close()


def limits(settings: Settings, burst: int) -> TenantLimits:
    return TenantLimits(
        ingestion_rate=RATE,
        ingestion_burst_size=burst,
        max_global_exemplars_per_user=100_000 if settings.exemplars_charged else 0,
        otel_convert_histograms_to_nhcb=settings.nhcb,
        otel_native_delta_ingestion=settings.native_delta,
    )


def post(
    rls: RlsProcess, tenant: str, body: bytes, headers: dict[str, str], path: str = "/otlp/v1/metrics"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", rls.authz_http_port, timeout=10)
    try:
        conn.request("POST", "/ext_authz" + path, body=body, headers={**headers, "x-scope-orgid": tenant})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def encoded(req: svc.ExportMetricsServiceRequest, content_type: str) -> bytes:
    return req.SerializeToString() if content_type == PROTOBUF else otlp_json(req)


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
@pytest.mark.parametrize("content_type", [PROTOBUF, JSON], ids=["protobuf", "json"])
@pytest.mark.parametrize("name", list(REQUESTS))
def test_otlp_at_the_burst_boundary(
    rls: RlsProcess, redis_server: RedisServer, name: str, content_type: str, settings: Settings
) -> None:
    req = REQUESTS[name]
    n = mimir_charge(req, settings)
    body = encoded(req, content_type)
    for burst, admitted in ((n, True), (n - 1, False)):
        tenant = f"otlp-{uuid.uuid4().hex[:10]}"
        set_limits(redis_server.url, tenant, limits(settings, burst))
        status, headers, answer = post(rls, tenant, body, {"content-type": content_type})
        assert status == (200 if admitted else 429), f"burst {burst} for a request Mimir charges {n}"
        if admitted:
            assert headers["x-mimir-edge-items"] == str(n)
            continue
        # Mimir's 429 in OTLP's shape: a google.rpc.Status in the request's format.
        assert headers["content-type"] == content_type
        assert headers["x-content-type-options"] == "nosniff"
        assert "retry-after" not in headers  # over the burst: waiting cannot help
        if content_type == PROTOBUF:
            got = status_pb2.Status.FromString(answer)
            code, message = got.code, got.message
        else:
            doc = json.loads(answer)
            code, message = doc["code"], doc["message"]
        assert code == 8  # ResourceExhausted
        assert "err-mimir-tenant-max-ingestion-rate" in message


def test_nginx_mirror_copy_is_counted_as_otlp(rls: RlsProcess, redis_server: RedisServer) -> None:
    """NGINX's mirror phase sends the OTLP copy to MIRROR_OTLP_PATH (a path Mimir has no route for):
    the RLS must still count it as OTLP, not refuse it as a bad remote_write body."""
    req = REQUESTS["every-type-several-resources"]
    n = mimir_charge(req)
    for burst, admitted in ((n, True), (n - 1, False)):
        tenant = f"otlp-mirror-{uuid.uuid4().hex[:8]}"
        set_limits(redis_server.url, tenant, limits(Settings(), burst))
        status, headers, answer = post(
            rls, tenant, req.SerializeToString(), {"content-type": PROTOBUF}, MIRROR_OTLP_PATH
        )
        assert status == (200 if admitted else 429), f"burst {burst} for a request Mimir charges {n}"
        if admitted:
            assert headers["x-mimir-edge-items"] == str(n)
        else:
            assert status_pb2.Status.FromString(answer).code == 8


def test_rate_limited_answer_has_retry_after(rls: RlsProcess, redis_server: RedisServer) -> None:
    req = REQUESTS["identifying-only-resource"]
    n = mimir_charge(req)
    tenant = f"otlp-retry-{uuid.uuid4().hex[:8]}"
    # 1 item/s: the second write lacks `missing` items, which take `missing` seconds to refill
    # (a little less by the time it arrives).
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=1, ingestion_burst_size=n + n // 2))
    missing = n - n // 2
    body = req.SerializeToString()
    assert post(rls, tenant, body, {"content-type": PROTOBUF})[0] == 200
    status, headers, answer = post(rls, tenant, body, {"content-type": PROTOBUF})
    assert status == 429
    assert int(headers["retry-after"]) in (missing - 1, missing)
    assert status_pb2.Status.FromString(answer).code == 8


def test_gzip_body_is_charged_as_the_plain_one(rls: RlsProcess, redis_server: RedisServer) -> None:
    req = REQUESTS["every-type-several-resources"]
    n = mimir_charge(req)
    tenant = f"otlp-gz-{uuid.uuid4().hex[:8]}"
    set_limits(redis_server.url, tenant, limits(Settings(), n))
    headers = {"content-type": PROTOBUF, "content-encoding": "gzip"}
    status, answer, _ = post(rls, tenant, gzip.compress(req.SerializeToString()), headers)
    assert (status, answer["x-mimir-edge-items"]) == (200, str(n))


def test_otlp_and_remote_write_share_one_budget(rls: RlsProcess, redis_server: RedisServer) -> None:
    req = REQUESTS["identifying-only-resource"]
    n = mimir_charge(req)
    tenant = f"otlp-rw-{uuid.uuid4().hex[:8]}"
    # Room for the OTLP write and 30 remote_write samples, not one sample more.
    set_limits(redis_server.url, tenant, limits(Settings(), n + 30))
    assert post(rls, tenant, req.SerializeToString(), {"content-type": PROTOBUF})[0] == 200
    rw = compress(rw1_request(Shape(series=31)))
    status, headers, _ = post(rls, tenant, rw, dict(RW1_HEADERS), path="/api/v1/push")
    assert (status, headers["content-type"]) == (429, "text/plain; charset=utf-8")  # remote_write's own answer
    rw = compress(rw1_request(Shape(series=30)))
    assert post(rls, tenant, rw, dict(RW1_HEADERS), path="/api/v1/push")[0] == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "application/json; charset=utf-8"}, 415),
        ({"content-type": PROTOBUF, "content-encoding": "snappy"}, 415),
        ({"content-type": PROTOBUF}, 400),
    ],
)
def test_refusals_in_otlp_shape(rls: RlsProcess, headers: dict[str, str], status: int) -> None:
    got, answer, body = post(rls, f"otlp-bad-{uuid.uuid4().hex[:8]}", b"\xff\xff\xff", headers)
    assert got == status
    # Unsupported types are answered in protobuf, as Mimir does.
    assert answer["content-type"] == PROTOBUF
    assert status_pb2.Status.FromString(body).code == 3  # InvalidArgument


async def test_grpc_check_counts_otlp_by_path(rls: RlsProcess, redis_server: RedisServer) -> None:
    req = REQUESTS["every-type-several-resources"]
    n = mimir_charge(req, Settings(nhcb=True))
    async with grpc.aio.insecure_channel(rls.grpc_addr) as channel:
        stub = authz_grpc.AuthorizationStub(channel)
        for burst, admitted in ((n, True), (n - 1, False)):
            tenant = f"otlp-grpc-{uuid.uuid4().hex[:8]}"
            set_limits(redis_server.url, tenant, limits(Settings(nhcb=True), burst))
            check = authz.CheckRequest()
            http_request = check.attributes.request.http
            http_request.path = "/otlp/v1/metrics"
            http_request.headers.update({"content-type": PROTOBUF, "x-scope-orgid": tenant})
            http_request.raw_body = req.SerializeToString()
            answer = await stub.Check(check)
            assert answer.HasField("ok_response") is admitted, f"burst {burst} for {n}"
            if not admitted:
                denied = answer.denied_response
                assert denied.status.code == 429
                # The gRPC transport's body is a string: the Status goes as JSON, typed so.
                content_type = {h.header.key: h.header.value for h in denied.headers}["content-type"]
                assert (content_type, json.loads(denied.body)["code"]) == (JSON, 8)


def test_ha_replicas_from_the_first_point_attributes(rls: RlsProcess, redis_server: RedisServer) -> None:
    """Mimir's HA tracker runs on the converted series: `cluster` and `__replica__` data point
    attributes become those labels, so an OTLP HA pair is deduplicated like a Prometheus one."""
    tenant = f"otlp-ha-{uuid.uuid4().hex[:8]}"
    set_limits(
        redis_server.url, tenant, TenantLimits(accept_ha_samples=True, ingestion_rate=RATE, ingestion_burst_size=10**9)
    )

    def build(replica: str) -> svc.ExportMetricsServiceRequest:
        metrics = every_point_type()
        for point in metrics[0].gauge.data_points:
            point.attributes.add(key="cluster").value.string_value = "otel-1"
            point.attributes.add(key="__replica__").value.string_value = replica
        return request((resource(), metrics))

    def write(replica: str) -> dict[str, str]:
        status, headers, _ = post(rls, tenant, build(replica).SerializeToString(), {"content-type": PROTOBUF})
        assert status == 200
        return headers

    first = write("a")
    assert (first["x-mimir-edge-decision"], first["x-mimir-edge-items"]) == ("allowed", str(mimir_charge(build("a"))))
    duplicate = write("b")
    assert (duplicate["x-mimir-edge-decision"], duplicate["x-mimir-edge-items"]) == ("non_elected", "0")
    assert write("a")["x-mimir-edge-decision"] == "allowed"
