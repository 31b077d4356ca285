"""A real OTLP client end to end: the OpenTelemetry Python SDK and its OTLP/HTTP protobuf exporter
push through real NGINX (the full phase) → real Envoy (both ext_authz transports) → 2 real RLS
replicas on real Redis → a recording upstream standing for the distributor.

The SDK makes the metrics (counter, up-down counter, histogram, gauge) and its exporter sends
them; `encode_metrics` gives the exact ExportMetricsServiceRequest the exporter serialises, and
the same request as OTLP/JSON is made with `MessageToJson` (the SDK's JSON exporter package pins
conflicting versions). What Mimir charges for a request is computed here from the decoded
request by Mimir's rules (tests/otlp_requests.py), never by the product's counter.

- Under its limit every export arrives once, byte-identical, charged what Mimir would charge.
- Over its burst the exporter gets 429 (no Retry-After: waiting cannot help) and does what its
  documentation says: retries with exponential backoff (1 s, 2 s, 4 s, ... ±20 %) until its
  timeout, then gives up; every attempt shows at the edge, none reaches the upstream.
- Over its rate the exporter honours Retry-After and gets through later; what the upstream gets
  stays within rate·T + burst (T measured around the whole run with the real clock, a bound
  that holds whatever the machine's speed: the buckets refill on Redis's clock, on this host).
"""

from __future__ import annotations

import random
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from google.protobuf.json_format import MessageToJson
from mimir_edge.contract import ITEMS_HEADER, OTLP_PATH
from mimir_edge.core.limits import TenantLimits
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.deploy.nginx import NginxOptions
from mimir_edge.localstack.nginx import NginxProcess
from mimir_edge.localstack.processes import MissingProgram
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.proto.opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult, MetricsData
from opentelemetry.sdk.resources import Resource
from prometheus_client.parser import text_string_to_metric_families

from tests.otlp_requests import mimir_charge
from tests.recording_upstream import RecordingUpstream
from tests.stack import Stack, post, set_limits
from tests.waiting import wait_for

PROTOBUF, JSON = "application/x-protobuf", "application/json"
#: Room for everything the under-limit tests send.
UNDER = TenantLimits(ingestion_rate=1_000_000, ingestion_burst_size=10_000_000)
EXPORTS = 5
#: The exporter's documented backoff: 2**retry seconds, ±20 % jitter, at most 6 attempts.
BACKOFF_S, JITTER, MAX_ATTEMPTS = 1.0, 0.2, 6


@dataclass
class Edge:
    transport: str
    nginx: NginxProcess
    upstream: RecordingUpstream
    stack: Stack

    @property
    def endpoint(self) -> str:
        return f"{self.nginx.url}{OTLP_PATH}"

    def decisions(self, tenant: str) -> Counter[str]:
        """rls_tenant_requests_total of `tenant` by decision, summed over the RLS replicas."""
        total: Counter[str] = Counter()
        for rls in self.stack.rls:
            with urllib.request.urlopen(rls.metrics_url, timeout=5) as reply:
                text = reply.read().decode()
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name == "rls_tenant_requests_total" and s.labels.get("tenant") == tenant:
                        total[s.labels["decision"]] += int(s.value)
        return total

    def received(self, tenant: str) -> list[tuple[str, dict[str, str], bytes]]:
        return [(s.path, s.headers, s.body) for s in self.upstream.seen if s.tenant == tenant]


@pytest.fixture(scope="module", params=["grpc", "http"])
def edge(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[Edge]:
    transport: str = request.param
    workdir = tmp_path_factory.mktemp(f"otel-{transport}")
    upstream = RecordingUpstream("distributor", keep_bodies=True).start()
    stack = Stack(workdir)
    nginx: NginxProcess | None = None
    try:
        for _ in range(2):
            stack.add_rls({"REDIS_URL": redis_server.url})
        envoy = stack.add_envoy(
            EnvoyOptions(
                rls=tuple(("127.0.0.1", r.authz_port(transport)) for r in stack.rls),
                upstream=upstream.address,
                listen=("127.0.0.1", 0),
                admin=("127.0.0.1", 0),
                # The transport is explicit: the default is another part of the project's choice.
                authz_transport=transport,
                # Closed on failure, with time to answer on a loaded host: an RLS timeout must never
                # admit a write here, or "nothing beyond rate·T + burst" would not be the RLS's doing.
                failure_mode_allow=False,
                authz_timeout_s=5.0,
            )
        )
        nginx = NginxProcess(
            workdir / "nginx",
            NginxOptions(
                phase="full",
                listen=("127.0.0.1", 0),
                distributor=upstream.address,
                envoy=("127.0.0.1", envoy.listen_port),
            ),
        ).start()
        yield Edge(transport, nginx, upstream, stack)
    except MissingProgram as exc:
        pytest.fail(str(exc))
    finally:
        if nginx is not None:
            nginx.stop()
        stack.close()
        upstream.stop()


def sdk_metrics(step: int, shops: int = 3) -> MetricsData:
    """What the SDK collects after `step` rounds of a small service's instruments (cumulative)."""
    reader = InMemoryMetricReader()
    resource = Resource.create({"service.name": "checkout", "service.instance.id": "pod-1", "deployment": "e2e"})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("checkout", "1.0")
    orders = meter.create_counter("orders", unit="1", description="orders placed")
    inflight = meter.create_up_down_counter("inflight")
    latency = meter.create_histogram("latency", unit="s")
    queue = meter.create_gauge("queue_depth")
    for round_ in range(step + 1):
        for shop in range(shops):
            attributes = {"shop": f"shop-{shop}"}
            orders.add(round_ + 1, attributes)
            inflight.add(1 if round_ % 2 else -1, attributes)
            latency.record(0.05 * (shop + 1) * (round_ + 1), attributes)
            queue.set(round_ * 10 + shop, attributes)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


def charge_of(body: bytes) -> int:
    return mimir_charge(svc.ExportMetricsServiceRequest.FromString(body))


def exporter(edge: Edge, tenant: str, timeout_s: float) -> OTLPMetricExporter:
    # Every setting explicit: the exporter would otherwise read OTEL_EXPORTER_OTLP_* (a developer's
    # gzip setting would change the bytes on the wire).
    return OTLPMetricExporter(
        endpoint=edge.endpoint,
        headers={"X-Scope-OrgID": tenant},
        timeout=timeout_s,
        compression=Compression.NoCompression,
    )


def test_under_its_limit_every_export_arrives_once_byte_identical(edge: Edge, redis_server: RedisServer) -> None:
    tenant = f"otel-{uuid.uuid4().hex[:8]}"
    set_limits(redis_server.url, tenant, UNDER)
    sender = exporter(edge, tenant, timeout_s=10)
    sent: list[bytes] = []
    try:
        for step in range(EXPORTS):
            data = sdk_metrics(step)
            sent.append(encode_metrics(data).SerializeToString())  # exactly what the exporter sends
            assert sender.export(data) is MetricExportResult.SUCCESS
    finally:
        sender.shutdown()
    received = edge.received(tenant)
    assert Counter(body for _, _, body in received) == Counter(sent)
    assert len(set(sent)) == EXPORTS  # distinct exports: "once each" means something
    for path, headers, body in received:
        assert path == OTLP_PATH and headers["content-type"] == PROTOBUF
        assert headers[ITEMS_HEADER] == str(charge_of(body))
    assert edge.decisions(tenant) == Counter({"allowed": EXPORTS})
    print(f"OTel SDK protobuf: {EXPORTS} exports, each arrived once; items {[charge_of(b) for b in sent]}")


def test_the_same_requests_as_otlp_json_arrive_once_and_are_charged_the_same(
    edge: Edge, redis_server: RedisServer
) -> None:
    tenant = f"otel-json-{uuid.uuid4().hex[:8]}"
    set_limits(redis_server.url, tenant, UNDER)
    requests = [encode_metrics(sdk_metrics(step)) for step in range(EXPORTS)]
    bodies = [MessageToJson(r, use_integers_for_enums=True).encode() for r in requests]
    headers = {"X-Scope-OrgID": tenant, "Content-Type": JSON}
    assert [post(edge.nginx.url, body, headers, path=OTLP_PATH).status for body in bodies] == [200] * EXPORTS
    received = edge.received(tenant)
    assert Counter(body for _, _, body in received) == Counter(bodies)
    charged = {body: int(h[ITEMS_HEADER]) for _, h, body in received}
    assert [charged[body] for body in bodies] == [charge_of(r.SerializeToString()) for r in requests]
    assert {h["content-type"] for _, h, _ in received} == {JSON}


def attempts_fit_the_documented_backoff(attempts: int, elapsed_s: float, timeout_s: float) -> bool:
    """Whether `attempts` tries in `elapsed_s` fit exponential backoff stopped by the timeout: the
    retries waited at least the low end of 1 + 2 + 4 + ... s, and the next wait would overrun."""
    waited_at_least = sum(BACKOFF_S * 2**r * (1 - JITTER) for r in range(attempts - 1))
    next_wait_at_most = BACKOFF_S * 2 ** (attempts - 1) * (1 + JITTER)
    return elapsed_s >= waited_at_least and (attempts == MAX_ATTEMPTS or elapsed_s + next_wait_at_most > timeout_s)


def test_over_its_burst_the_exporter_backs_off_until_its_timeout_and_nothing_is_admitted(
    edge: Edge, redis_server: RedisServer
) -> None:
    tenant = f"otel-over-{uuid.uuid4().hex[:8]}"
    data = sdk_metrics(0)
    n = charge_of(encode_metrics(data).SerializeToString())
    # One item short of the export, refilling far slower than the test runs: every try is a 429.
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=0.0001, ingestion_burst_size=n - 1))
    timeout_s = 10.0
    random.seed(16)  # the exporter's jitter comes from `random`: the same waits on every run
    sender = exporter(edge, tenant, timeout_s)
    started = time.monotonic()
    try:
        result = sender.export(data)
    finally:
        sender.shutdown()
    elapsed = time.monotonic() - started
    assert result is MetricExportResult.FAILURE
    decided = wait_for(lambda: edge.decisions(tenant) or None, timeout_s=10, what="the edge's decisions")
    attempts = decided["denied"]
    assert decided == Counter({"denied": attempts})  # every try refused at the edge
    assert attempts >= 3  # 0 s, ~1 s, ~3 s: the first two waits (at most 3.6 s) fit the 10 s timeout
    assert attempts_fit_the_documented_backoff(attempts, elapsed, timeout_s), (attempts, elapsed)
    assert edge.received(tenant) == []
    print(
        f"OTel SDK over its burst: {attempts} tries in {elapsed:.1f} s (timeout {timeout_s} s), all 429, none admitted"
    )


def test_over_its_rate_the_exporter_retries_after_and_stays_within_rate_t_plus_burst(
    edge: Edge, redis_server: RedisServer
) -> None:
    tenant = f"otel-rate-{uuid.uuid4().hex[:8]}"
    n = charge_of(encode_metrics(sdk_metrics(0)).SerializeToString())
    # A burst of one export, refilled in 2 s: each later export waits (Retry-After) for its turn.
    rate, burst = n / 2, n
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=rate, ingestion_burst_size=burst))
    sender = exporter(edge, tenant, timeout_s=6)
    results: list[tuple[bytes, MetricExportResult]] = []
    started = time.monotonic()
    try:
        for step in range(4):
            data = sdk_metrics(step)
            results.append((encode_metrics(data).SerializeToString(), sender.export(data)))
    finally:
        sender.shutdown()
    elapsed = time.monotonic() - started
    received = Counter(body for _, _, body in edge.received(tenant))
    succeeded = [body for body, result in results if result is MetricExportResult.SUCCESS]
    failed = [body for body, result in results if result is not MetricExportResult.SUCCESS]
    # Each successful export arrived once; a failed one never.
    assert received == Counter(succeeded) and not set(failed) & set(received)
    admitted_items = sum(charge_of(body) for body in received.elements())
    assert admitted_items <= rate * elapsed + burst, (admitted_items, rate, elapsed, burst)
    decided = edge.decisions(tenant)
    assert decided["allowed"] == len(succeeded)
    # The later exports were refused first and retried: more tries at the edge than exports.
    assert decided["denied"] >= 1 and sum(decided.values()) > len(results)
    assert len(succeeded) >= 2  # the burst, and at least one export let in after its Retry-After
    print(
        f"OTel SDK over its rate: {len(succeeded)}/{len(results)} exports in {elapsed:.1f} s after "
        f"{decided['denied']} 429s; {admitted_items} items admitted <= rate·T + burst = {rate * elapsed + burst:.0f}"
    )


def test_a_429_carries_retry_after_when_waiting_helps(edge: Edge, redis_server: RedisServer) -> None:
    """What the exporter's retry waits on: the RLS's Retry-After, passed through Envoy and NGINX."""
    tenant = f"otel-ra-{uuid.uuid4().hex[:8]}"
    body = encode_metrics(sdk_metrics(0)).SerializeToString()
    n = charge_of(body)
    set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=n / 4, ingestion_burst_size=n))
    headers = {"X-Scope-OrgID": tenant, "Content-Type": PROTOBUF}
    assert post(edge.nginx.url, body, headers, path=OTLP_PATH).status == 200
    refused = post(edge.nginx.url, body, headers, path=OTLP_PATH)
    # A google.rpc.Status: protobuf like the request over HTTP ext_authz; Envoy's gRPC denial
    # body is a string, so that transport sends it as JSON (tests/integration/test_otlp_charging.py).
    assert refused.status == 429
    assert refused.headers["content-type"] == (PROTOBUF if edge.transport == "http" else JSON)
    assert 1 <= int(refused.headers["retry-after"]) <= 4  # n items at n/4 per second
    assert refused.headers["x-mimir-edge-route"] == "envoy"
    assert edge.received(tenant) == [(OTLP_PATH, edge.received(tenant)[0][1], body)]
