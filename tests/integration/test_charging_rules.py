"""What a write is charged, through the RLS's real Check path (the ext_authz HTTP service of a real
`mimir-rls` on real Redis), RW1 and RW2: exemplars only where Mimir keeps them, at the exact burst
boundary; an HA pair's replicas told apart by the first series' labels (RW2: through the symbols
table).

N is computed here from the decoded request by Mimir's rule (`prePushValidationMiddleware`):
samples + histograms + metadata, plus exemplars only when `max_global_exemplars_per_user` > 0. A
request needing N is admitted under a burst of exactly N and refused under N - 1.
"""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator

import pytest
from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, RW2_HEADERS, Shape, compress, rw1_request, rw2_request
from mimir_edge.proto.io.prometheus.write.v2 import types_pb2 as v2
from mimir_edge.proto.prometheus import remote_pb2

from tests.stack import Stack, set_limits

#: Refill over the whole test is far below one item: the counts are exact without a clock.
RATE = 0.0001
SHAPE = Shape(series=40, samples_per_series=2, histograms_per_series=1, exemplars_per_series=3, metadata=5)


@pytest.fixture(scope="module")
def rls(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[RlsProcess]:
    stack = Stack(tmp_path_factory.mktemp("exemplars"))
    yield stack.add_rls({"REDIS_URL": redis_server.url})
    stack.close()


#: Mimir's normalizeMetricName (pkg/mimirpb): the suffix a metadata type cuts from the series name.
FAMILY_SUFFIXES = {
    v2.Metadata.METRIC_TYPE_HISTOGRAM: ("_bucket", "_count", "_sum"),
    v2.Metadata.METRIC_TYPE_GAUGEHISTOGRAM: ("_bucket", "_gcount", "_gsum"),
    v2.Metadata.METRIC_TYPE_SUMMARY: ("_count", "_sum"),
}


def rw2_metadata_families(rw2: v2.Request) -> set[str]:
    """Mimir keeps one metadata entry per metric family of a RW2 request (MetricMetadataUnmarshalRW2
    into a dedupingMetadataSet): the series' __name__ (read before its metadata: the labels come
    first here) without the suffix its type implies, when the type, help or unit is set."""

    def symbol(ref: int) -> str:
        return "" if ref == 0 else rw2.symbols[ref]  # rw2PagedSymbols.get: reference 0 is ""

    families = set()
    for series in rw2.timeseries:
        meta = series.metadata
        if not (meta.type or symbol(meta.help_ref) or symbol(meta.unit_ref)):
            continue
        refs = series.labels_refs
        names = [symbol(refs[i + 1]) for i in range(0, len(refs), 2) if symbol(refs[i]) == "__name__"]
        name = names[-1] if names else ""
        family = next((name[: -len(s)] for s in FAMILY_SUFFIXES.get(meta.type, ()) if name.endswith(s)), name)
        if family:
            families.add(family)
    return families


def mimir_charge(raw: bytes, protocol: str, exemplar_limit: int) -> int:
    """What Mimir charges for this request, from the fully decoded message."""
    if protocol == "rw1":
        rw1 = remote_pb2.WriteRequest.FromString(raw)
        samples = sum(len(s.samples) + len(s.histograms) for s in rw1.timeseries)
        exemplars = sum(len(s.exemplars) for s in rw1.timeseries)
        metadata = len(rw1.metadata)
    else:
        rw2 = v2.Request.FromString(raw)
        samples = sum(len(s.samples) + len(s.histograms) for s in rw2.timeseries)
        exemplars = sum(len(s.exemplars) for s in rw2.timeseries)
        metadata = len(rw2_metadata_families(rw2))
    assert samples, "the request must carry samples for the test to mean anything"
    return samples + metadata + (exemplars if exemplar_limit > 0 else 0)


def exemplars_in(raw: bytes, protocol: str) -> int:
    message = remote_pb2.WriteRequest.FromString(raw) if protocol == "rw1" else v2.Request.FromString(raw)
    return sum(len(s.exemplars) for s in message.timeseries)


def check_answer(rls: RlsProcess, tenant: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", rls.authz_http_port, timeout=30)
    try:
        conn.request("POST", "/ext_authz/api/v1/push", body=body, headers={**headers, "x-scope-orgid": tenant})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def check(rls: RlsProcess, tenant: str, body: bytes, headers: dict[str, str]) -> int:
    return check_answer(rls, tenant, body, headers)[0]


@pytest.mark.parametrize("exemplar_limit", [0, 100_000], ids=["default-limit-exemplars-free", "limit-charged"])
@pytest.mark.parametrize("protocol", ["rw1", "rw2"])
def test_exemplars_at_the_burst_boundary(
    rls: RlsProcess, redis_server: RedisServer, protocol: str, exemplar_limit: int
) -> None:
    raw = rw1_request(SHAPE) if protocol == "rw1" else rw2_request(SHAPE)
    headers = RW1_HEADERS if protocol == "rw1" else RW2_HEADERS
    n = mimir_charge(raw, protocol, exemplar_limit)
    assert exemplars_in(raw, protocol), "the request must carry exemplars for the test to mean anything"
    body = compress(raw)
    for burst, admitted in ((n, True), (n - 1, False)):
        tenant = f"ex-{protocol}-{exemplar_limit}-{burst}-{uuid.uuid4().hex[:6]}"
        limits = TenantLimits(
            ingestion_rate=RATE, ingestion_burst_size=burst, max_global_exemplars_per_user=exemplar_limit
        )
        set_limits(redis_server.url, tenant, limits)
        status = check(rls, tenant, body, dict(headers))
        assert status == (200 if admitted else 429), f"burst {burst} for a request Mimir charges {n}"


def test_rw2_metadata_on_every_series_is_charged_once_per_family(rls: RlsProcess, redis_server: RedisServer) -> None:
    """What a Prometheus RW2 sender writes: each series carries its family's metadata. 200 series of
    50 metric names: Mimir charges 200 samples + 50 metadata entries, not 200 + 200."""
    raw = rw2_request(Shape(series=200, metadata=200))
    n = mimir_charge(raw, "rw2", exemplar_limit=0)
    assert n == 200 + 50
    for burst, admitted in ((n, True), (n - 1, False)):
        tenant = f"families-{burst}-{uuid.uuid4().hex[:6]}"
        set_limits(redis_server.url, tenant, TenantLimits(ingestion_rate=RATE, ingestion_burst_size=burst))
        status = check(rls, tenant, compress(raw), dict(RW2_HEADERS))
        assert status == (200 if admitted else 429), f"burst {burst} for a request Mimir charges {n}"


@pytest.mark.parametrize("protocol", ["rw1", "rw2"])
def test_ha_replicas_from_the_first_series_labels(rls: RlsProcess, redis_server: RedisServer, protocol: str) -> None:
    tenant = f"ha-{protocol}-{uuid.uuid4().hex[:6]}"
    set_limits(
        redis_server.url, tenant, TenantLimits(accept_ha_samples=True, ingestion_rate=RATE, ingestion_burst_size=10**9)
    )
    build, headers = (rw1_request, RW1_HEADERS) if protocol == "rw1" else (rw2_request, RW2_HEADERS)

    def write(replica: str) -> dict[str, str]:
        shape = Shape(series=50, external_labels=(("__replica__", replica), ("cluster", "ha-1")))
        status, answer = check_answer(rls, tenant, compress(build(shape)), dict(headers))
        assert status == 200
        return answer

    first = write("replica-1")
    assert (first["x-mimir-edge-decision"], first["x-mimir-edge-items"]) == ("allowed", "50")
    duplicate = write("replica-2")
    assert (duplicate["x-mimir-edge-decision"], duplicate["x-mimir-edge-items"]) == ("non_elected", "0")
    assert write("replica-1")["x-mimir-edge-decision"] == "allowed"
