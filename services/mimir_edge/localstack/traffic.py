"""Synthetic remote_write and OTLP bodies, built with the real Prometheus and OpenTelemetry
messages: for the demo, tests, benchmarks and load tests. Label sets look like Prometheus' (job,
instance, __name__, ...), OTLP requests like an instrumented service's."""

from __future__ import annotations

from dataclasses import dataclass

import snappy

from mimir_edge.core.remote_write import RW2_PROTO
from mimir_edge.proto.io.prometheus.write.v2 import types_pb2 as v2
from mimir_edge.proto.opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as otlp_service
from mimir_edge.proto.opentelemetry.proto.common.v1 import common_pb2 as otlp_common
from mimir_edge.proto.opentelemetry.proto.metrics.v1 import metrics_pb2 as otlp_metrics
from mimir_edge.proto.prometheus import remote_pb2, types_pb2

RW1_HEADERS = {
    "content-type": "application/x-protobuf",
    "content-encoding": "snappy",
    "x-prometheus-remote-write-version": "0.1.0",
}
RW2_HEADERS = {
    "content-type": f"application/x-protobuf;proto={RW2_PROTO}",
    "content-encoding": "snappy",
    "x-prometheus-remote-write-version": "2.0.0",
}
#: What the OTel Collector's otlphttp exporter sends by default: protobuf, gzip.
OTLP_HEADERS = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}


@dataclass(frozen=True, slots=True)
class Shape:
    """What to put in a request: per series, this many samples, histograms, exemplars."""

    series: int
    samples_per_series: int = 1
    histograms_per_series: int = 0
    exemplars_per_series: int = 0
    metadata: int = 0
    labels_per_series: int = 8
    #: Added to every series, as Prometheus adds its external labels (an HA pair's cluster/replica).
    external_labels: tuple[tuple[str, str], ...] = ()

    @property
    def items(self) -> int:
        """What Mimir charges for it (for RW2 up to 50 metadata: RW2 charges one per metric family,
        and `rw2_request`'s series cycle through 50 names)."""
        per_series = self.samples_per_series + self.histograms_per_series + self.exemplars_per_series
        return self.series * per_series + self.metadata


def _labels(i: int, n: int) -> list[tuple[str, str]]:
    base = [
        ("__name__", f"http_requests_total_{i % 50}"),
        ("job", "api-server"),
        ("instance", f"10.0.{i % 256}.{i // 256 % 256}:9100"),
        ("namespace", f"ns-{i % 7}"),
        ("pod", f"api-server-{i % 113}-x7k2p"),
        ("code", str(200 + i % 5)),
        ("method", "GET" if i % 2 else "POST"),
        ("le", str(i % 13)),
    ]
    extra = [(f"label_{k}", f"value_{k}_{i}") for k in range(max(0, n - len(base)))]
    return sorted((base + extra)[:n])


def rw1_request(shape: Shape, ts_ms: int = 1_700_000_000_000) -> bytes:
    """Uncompressed prometheus.WriteRequest."""
    req = remote_pb2.WriteRequest()
    for i in range(shape.series):
        series = req.timeseries.add()
        for name, value in sorted(_labels(i, shape.labels_per_series) + list(shape.external_labels)):
            series.labels.add(name=name, value=value)
        for k in range(shape.samples_per_series):
            series.samples.add(value=float(i + k), timestamp=ts_ms + k)
        for k in range(shape.histograms_per_series):
            h = series.histograms.add(count_int=10 + k, sum=12.5, schema=3, timestamp=ts_ms + k)
            h.positive_spans.add(offset=0, length=2)
            h.positive_deltas.extend([4, 2])
        for k in range(shape.exemplars_per_series):
            ex = series.exemplars.add(value=0.5, timestamp=ts_ms + k)
            ex.labels.add(name="trace_id", value=f"{i:016x}{k:016x}")
    for i in range(shape.metadata):
        req.metadata.add(
            type=types_pb2.MetricMetadata.COUNTER,
            metric_family_name=f"http_requests_total_{i}",
            help="Total HTTP requests.",
        )
    data: bytes = req.SerializeToString()
    return data


def rw2_request(shape: Shape, ts_ms: int = 1_700_000_000_000) -> bytes:
    """Uncompressed io.prometheus.write.v2.Request; the first `metadata` series carry a typed
    Metadata, as a Prometheus RW2 sender attaches it. Series names cycle through 50 families, so
    Mimir charges min(metadata, 50) metadata items (one per family), which `Shape.items` assumes
    (metadata <= 50)."""
    req = v2.Request()
    symbols: dict[str, int] = {"": 0}

    def ref(text: str) -> int:
        if text not in symbols:
            symbols[text] = len(symbols)
        return symbols[text]

    for i in range(shape.series):
        series = req.timeseries.add()
        for name, value in sorted(_labels(i, shape.labels_per_series) + list(shape.external_labels)):
            series.labels_refs.extend([ref(name), ref(value)])
        for k in range(shape.samples_per_series):
            series.samples.add(value=float(i + k), timestamp=ts_ms + k)
        for k in range(shape.histograms_per_series):
            h = series.histograms.add(count_int=10 + k, sum=12.5, schema=3, timestamp=ts_ms + k)
            h.positive_spans.add(offset=0, length=2)
            h.positive_deltas.extend([4, 2])
        for k in range(shape.exemplars_per_series):
            series.exemplars.add(
                labels_refs=[ref("trace_id"), ref(f"{i:016x}{k:016x}")], value=0.5, timestamp=ts_ms + k
            )
        if i < shape.metadata:
            series.metadata.type = v2.Metadata.METRIC_TYPE_COUNTER
            series.metadata.help_ref = ref("Total HTTP requests.")
    req.symbols.extend(symbols)
    data: bytes = req.SerializeToString()
    return data


def compress(raw: bytes) -> bytes:
    """Snappy block format, as remote_write sends it."""
    return bytes(snappy.compress(raw))


def otlp_request(points: int = 2000, metrics: int = 100, attributes: int = 5, ts_ms: int = 1_700_000_000_000) -> bytes:
    """Uncompressed OTLP protobuf (ExportMetricsServiceRequest): one resource, `metrics` metrics,
    alternately gauges and cumulative monotonic sums, sharing `points` data points, each with
    `attributes` attributes. Mimir charges one item per point."""
    if points % metrics:
        raise ValueError("points must be a multiple of metrics")

    def kv(key: str, value: str) -> otlp_common.KeyValue:
        return otlp_common.KeyValue(key=key, value=otlp_common.AnyValue(string_value=value))

    request = otlp_service.ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(
        [kv("service.name", "checkout"), kv("service.instance.id", "checkout-7d9f-x2k"), kv("host.name", "node-12")]
    )
    scope = rm.scope_metrics.add()
    scope.scope.name = "mimir-edge-demo"
    t_ns = ts_ms * 1_000_000
    for j in range(metrics):
        metric = scope.metrics.add(name=f"app_operation_{j}", unit="1")
        data = metric.sum if j % 2 else metric.gauge
        if j % 2:
            metric.sum.is_monotonic = True
            metric.sum.aggregation_temporality = otlp_metrics.AGGREGATION_TEMPORALITY_CUMULATIVE
        for p in range(points // metrics):
            point = data.data_points.add(start_time_unix_nano=t_ns - 10**10, time_unix_nano=t_ns, as_double=float(p))
            point.attributes.extend(kv(f"attr_{a}", f"value_{a}_{j}_{p}") for a in range(attributes))
    out: bytes = request.SerializeToString()
    return out
