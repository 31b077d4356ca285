"""The request bodies the benchmarks send, each with the name every result row carries.

- `small`: 10 series, 8 labels: a heartbeat-sized remote_write request.
- `realistic`: 2,000 series (Prometheus' default `max_samples_per_send`), 8 labels each, one
  float sample: a typical batch.
- `worst`: 2,000 series with 30 labels each, Mimir's default `max_label_names_per_series` (the
  most a series may carry and still be accepted), every value long and high-cardinality. Mimir's
  default `max_label_value_length` is 2,048 bytes, but 2,000 × 30 such values are 123 MB, over the
  RLS's and Envoy's 50 MB `MAX_REQUEST_BYTES`: the values here are `WORST_VALUE_BYTES` long.
- `otlp`: an OTLP ExportMetricsServiceRequest, protobuf, gzip (the OTel Collector's default), of
  2,000 number points (100 metrics × 20 points, 5 attributes each) under one resource.
- `otlp-gateway` (counting bench only): what a gateway Collector batching many services sends,
  2,000 number points as 200 resources × 10 metrics × 1 point, 5 attributes each; the same metric
  names under every resource, each with its own timestamp. Per point this is the counter's
  costliest common shape: every resource has its own target_info and its own metric list.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass

from mimir_edge.contract import OTLP_PATH
from mimir_edge.localstack.traffic import OTLP_HEADERS, RW1_HEADERS, Shape, compress, otlp_request, rw1_request
from mimir_edge.proto.opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as otlp_service
from mimir_edge.proto.opentelemetry.proto.common.v1 import common_pb2 as otlp_common
from mimir_edge.proto.opentelemetry.proto.metrics.v1 import metrics_pb2 as otlp_metrics
from mimir_edge.proto.prometheus import remote_pb2

PUSH_PATH = "/api/v1/push"
#: Mimir's defaults (pkg/util/validation/limits.go, -validation.max-label-names-per-series and
#: -validation.max-length-label-value).
MIMIR_MAX_LABEL_NAMES_PER_SERIES = 30
MIMIR_MAX_LABEL_VALUE_LENGTH = 2048
WORST_VALUE_BYTES = 128
T0_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Body:
    key: str
    protocol: str  # "remote_write 1.0" or "OTLP"
    path: str
    headers: dict[str, str]
    series: int
    labels_per_series: int
    raw: bytes
    data: bytes
    #: What else tells this body from another of the same protocol and size, e.g. "200 resources".
    shape: str = ""

    @property
    def name(self) -> str:
        """What every row prints: series, labels per series, bytes compressed / decompressed."""
        what = "points" if self.protocol == "OTLP" else "series"
        shape = f" in {self.shape}" if self.shape else ""
        return (
            f"{self.protocol}, {self.series:,} {what} × {self.labels_per_series} labels{shape}, "
            f"{_size(len(self.data))} / {_size(len(self.raw))}"
        )

    def describe(self) -> dict[str, object]:
        return {
            "key": self.key,
            "name": self.name,
            "protocol": self.protocol,
            "series": self.series,
            "labels_per_series": self.labels_per_series,
            "compressed_bytes": len(self.data),
            "decompressed_bytes": len(self.raw),
        }


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB" if n >= 1e3 else f"{n} B"


def _rw1(key: str, shape: Shape) -> Body:
    raw = rw1_request(shape)
    labels = shape.labels_per_series + len(shape.external_labels)
    return Body(key, "remote_write 1.0", PUSH_PATH, dict(RW1_HEADERS), shape.series, labels, raw, compress(raw))


def _long_value(i: int, k: int, size: int) -> str:
    """Hex of a hash chain: as incompressible as real high-cardinality values (UUIDs, URLs, paths)."""
    out = [hashlib.sha256(f"{i}/{k}".encode()).hexdigest()]
    while sum(map(len, out)) < size:
        out.append(hashlib.sha256(out[-1].encode()).hexdigest())
    return "".join(out)[:size]


def worst_case_request(series: int = 2000, value_bytes: int = WORST_VALUE_BYTES) -> bytes:
    """RW1 with `MIMIR_MAX_LABEL_NAMES_PER_SERIES` labels per series, each value `value_bytes` long."""
    if not 0 < value_bytes <= MIMIR_MAX_LABEL_VALUE_LENGTH:
        raise ValueError(f"label values must be 1..{MIMIR_MAX_LABEL_VALUE_LENGTH} bytes (Mimir's default limit)")
    request = remote_pb2.WriteRequest()
    for i in range(series):
        ts = request.timeseries.add()
        labels = [("__name__", f"http_request_duration_seconds_{i % 50}")]
        labels += [
            (f"label_{k:02d}", _long_value(i, k, value_bytes)) for k in range(1, MIMIR_MAX_LABEL_NAMES_PER_SERIES)
        ]
        for name, value in sorted(labels):
            ts.labels.add(name=name, value=value)
        ts.samples.add(value=float(i), timestamp=T0_MS)
    data: bytes = request.SerializeToString()
    return data


def otlp_gateway_request(resources: int = 200, metrics: int = 10, attributes: int = 5) -> bytes:
    """Uncompressed OTLP protobuf: `resources` resources (distinct service instances), each with
    the same `metrics` metrics (gauges and cumulative monotonic sums alternately), one point each."""

    def kv(key: str, value: str) -> otlp_common.KeyValue:
        return otlp_common.KeyValue(key=key, value=otlp_common.AnyValue(string_value=value))

    request = otlp_service.ExportMetricsServiceRequest()
    for r in range(resources):
        rm = request.resource_metrics.add()
        service = {"service.name": f"svc-{r % 20}", "service.instance.id": f"pod-{r}", "host.name": f"node-{r % 7}"}
        rm.resource.attributes.extend(kv(k, v) for k, v in service.items())
        scope = rm.scope_metrics.add()
        scope.scope.name = "io.opentelemetry.runtime"
        t_ns = (T0_MS + r) * 1_000_000
        for j in range(metrics):
            metric = scope.metrics.add(name=f"app_operation_{j}", unit="1", description=f"operation {j}")
            if j % 2:
                metric.sum.is_monotonic = True
                metric.sum.aggregation_temporality = otlp_metrics.AGGREGATION_TEMPORALITY_CUMULATIVE
                point = metric.sum.data_points.add(start_time_unix_nano=t_ns - 10**10, time_unix_nano=t_ns, as_double=j)
            else:
                point = metric.gauge.data_points.add(time_unix_nano=t_ns, as_double=j)
            point.attributes.extend(kv(f"attr_{a}", f"value_{a}_{j}_{r}") for a in range(attributes))
    out: bytes = request.SerializeToString()
    return out


def otlp_gateway() -> Body:
    raw = otlp_gateway_request()
    data = gzip.compress(raw, 6)
    return Body("otlp-gateway", "OTLP", OTLP_PATH, dict(OTLP_HEADERS), 2000, 5, raw, data, "200 resources")


def build() -> dict[str, Body]:
    """Every body, by key."""
    worst_raw = worst_case_request()
    otlp_raw = otlp_request()
    return {
        "small": _rw1("small", Shape(series=10)),
        "realistic": _rw1("realistic", Shape(series=2000)),
        "worst": Body(
            "worst",
            "remote_write 1.0",
            PUSH_PATH,
            dict(RW1_HEADERS),
            2000,
            MIMIR_MAX_LABEL_NAMES_PER_SERIES,
            worst_raw,
            compress(worst_raw),
        ),
        "otlp": Body("otlp", "OTLP", OTLP_PATH, dict(OTLP_HEADERS), 2000, 5, otlp_raw, gzip.compress(otlp_raw, 6)),
    }
