"""OTLP metrics requests for the tests, built with the generated protobuf classes (the OpenTelemetry
SDK is not installed in the project's environment), and what Mimir charges for one, computed
independently of the product's counter: from the fully decoded message, point by point, by the
rules of Mimir 3.1's translator (docs/parity.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mimir_edge.proto.opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc
from mimir_edge.proto.opentelemetry.proto.common.v1 import common_pb2 as common
from mimir_edge.proto.opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from mimir_edge.proto.opentelemetry.proto.resource.v1 import resource_pb2 as res

T0 = 1_764_540_000_000_000_000  # ns
DELTA = m.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = m.AGGREGATION_TEMPORALITY_CUMULATIVE


def kv(key: str, value: str | int | bool) -> common.KeyValue:
    if isinstance(value, bool):
        return common.KeyValue(key=key, value=common.AnyValue(bool_value=value))
    if isinstance(value, int):
        return common.KeyValue(key=key, value=common.AnyValue(int_value=value))
    return common.KeyValue(key=key, value=common.AnyValue(string_value=value))


def exemplars(n: int, t: int = T0) -> list[m.Exemplar]:
    return [
        m.Exemplar(
            time_unix_nano=t,
            as_double=float(i),
            trace_id=bytes(range(16)),
            span_id=bytes(range(8)),
            filtered_attributes=[kv("k", "v")],
        )
        for i in range(n)
    ]


def number_points(n: int, *, t: int = T0, n_exemplars: int = 0, attrs: int = 3) -> list[m.NumberDataPoint]:
    return [
        m.NumberDataPoint(
            attributes=[kv(f"a{j}", f"v{i}") for j in range(attrs)],
            start_time_unix_nano=t - 10**9,
            time_unix_nano=t,
            as_double=float(i),
            exemplars=exemplars(n_exemplars, t),
        )
        for i in range(n)
    ]


def histogram_points(
    n: int, *, bounds: int = 5, with_sum: bool = True, n_exemplars: int = 0, t: int = T0
) -> list[m.HistogramDataPoint]:
    points = []
    for i in range(n):
        p = m.HistogramDataPoint(
            attributes=[kv("route", f"/r{i}")],
            time_unix_nano=t,
            count=10,
            bucket_counts=[1] * (bounds + 1),
            explicit_bounds=[float(b) for b in range(bounds)],
            exemplars=exemplars(n_exemplars, t),
        )
        if with_sum:
            p.sum = 3.5
        points.append(p)
    return points


def exponential_points(n: int, *, n_exemplars: int = 0, t: int = T0) -> list[m.ExponentialHistogramDataPoint]:
    return [
        m.ExponentialHistogramDataPoint(
            attributes=[kv("route", f"/e{i}")],
            time_unix_nano=t,
            count=3,
            scale=2,
            positive=m.ExponentialHistogramDataPoint.Buckets(offset=1, bucket_counts=[1, 2]),
            exemplars=exemplars(n_exemplars, t),
        )
        for i in range(n)
    ]


def summary_points(n: int, *, quantiles: int = 3, t: int = T0) -> list[m.SummaryDataPoint]:
    return [
        m.SummaryDataPoint(
            attributes=[kv("route", f"/s{i}")],
            time_unix_nano=t,
            count=4,
            sum=2.0,
            quantile_values=[
                m.SummaryDataPoint.ValueAtQuantile(quantile=q / quantiles, value=1.0) for q in range(quantiles)
            ],
        )
        for i in range(n)
    ]


def resource(service: str | None = "checkout", *, instance: str | None = "pod-1", extra: int = 2) -> res.Resource:
    attributes = []
    if service is not None:
        attributes.append(kv("service.name", service))
    if instance is not None:
        attributes.append(kv("service.instance.id", instance))
    attributes += [kv(f"host.attr{i}", f"x{i}") for i in range(extra)]
    return res.Resource(attributes=attributes)


def every_point_type(*, n_exemplars: int = 2, with_sum: bool = True, t: int = T0) -> list[m.Metric]:
    """One metric of each kind OTLP has, cumulative, plus a delta sum and a delta histogram."""
    return [
        m.Metric(name="queue.depth", description="d", unit="1", gauge=m.Gauge(data_points=number_points(3, t=t))),
        m.Metric(
            name="requests",
            sum=m.Sum(
                data_points=number_points(4, n_exemplars=n_exemplars, t=t),
                aggregation_temporality=CUMULATIVE,
                is_monotonic=True,
            ),
        ),
        m.Metric(
            name="in.flight",
            sum=m.Sum(data_points=number_points(2, n_exemplars=n_exemplars, t=t), aggregation_temporality=CUMULATIVE),
        ),
        m.Metric(
            name="latency",
            unit="s",
            histogram=m.Histogram(
                data_points=histogram_points(3, with_sum=with_sum, n_exemplars=n_exemplars, t=t),
                aggregation_temporality=CUMULATIVE,
            ),
        ),
        m.Metric(
            name="size",
            exponential_histogram=m.ExponentialHistogram(
                data_points=exponential_points(2, n_exemplars=n_exemplars, t=t), aggregation_temporality=CUMULATIVE
            ),
        ),
        m.Metric(name="gc.pause", summary=m.Summary(data_points=summary_points(2, t=t))),
        m.Metric(
            name="delta.requests",
            sum=m.Sum(
                data_points=number_points(5, n_exemplars=n_exemplars, t=t),
                aggregation_temporality=DELTA,
                is_monotonic=True,
            ),
        ),
        m.Metric(
            name="delta.latency",
            histogram=m.Histogram(
                data_points=histogram_points(2, bounds=3, n_exemplars=n_exemplars, t=t), aggregation_temporality=DELTA
            ),
        ),
    ]


def request(*resources: tuple[res.Resource, list[m.Metric]]) -> svc.ExportMetricsServiceRequest:
    return svc.ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(resource=r, scope_metrics=[m.ScopeMetrics(metrics=metrics)]) for r, metrics in resources
        ]
    )


@dataclass(frozen=True)
class Settings:
    nhcb: bool = False
    native_delta: bool = False
    exemplars_charged: bool = False


def mimir_charge(req: svc.ExportMetricsServiceRequest, settings: Settings = Settings()) -> int:
    """What Mimir 3.1 charges for the request, walked point by point on the decoded message."""
    samples = exemplar_count = 0
    metadata: dict[str, tuple[str, str, str]] = {}
    metadata_entries = 0
    info_series: dict[tuple[object, ...], set[int]] = {}
    for rm in req.resource_metrics:
        times: list[int] = []
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(metric, kind)
                times += [p.time_unix_nano for p in data.data_points]
                if not data.data_points or not metric.name:
                    continue
                temporality = getattr(data, "aggregation_temporality", None)
                if temporality is not None and not (
                    temporality == CUMULATIVE or (settings.native_delta and temporality == DELTA)
                ):
                    continue
                monotonic = kind == "sum" and data.is_monotonic
                for p in data.data_points:
                    if kind == "histogram":
                        samples += (
                            1
                            if settings.nhcb
                            else min(len(p.bucket_counts), len(p.explicit_bounds)) + 2 + p.HasField("sum")
                        )
                    elif kind == "summary":
                        samples += 2 + len(p.quantile_values)
                    else:
                        samples += 1
                    if kind in ("histogram", "exponential_histogram") or monotonic:
                        exemplar_count += len(p.exemplars)
                ptype = {"sum": "counter" if monotonic else "gauge", "exponential_histogram": "histogram"}.get(
                    kind, kind
                )
                meta = (metric.description, metric.unit, ptype)
                if metadata.get(metric.name) != meta:
                    metadata[metric.name] = meta
                    metadata_entries += 1
        attrs = {a.key: a.value.string_value for a in rm.resource.attributes}
        ident = {"service.name", "service.namespace", "service.instance.id"}
        if not times or not set(attrs) - ident:
            continue
        job = attrs.get("service.name", "")
        instance = attrs.get("service.instance.id", "")
        if not job and not instance:
            continue
        lo, hi = min(times), max(times)
        stamps = set()
        t = lo
        while t < hi:
            stamps.add(t // 1_000_000)
            t += 150 * 10**9
        stamps.add(hi // 1_000_000)
        key = (job, instance, tuple(sorted((k, v) for k, v in attrs.items() if k not in ident)))
        info_series.setdefault(key, set()).update(stamps)
    target_info = sum(len(s) for s in info_series.values())
    metadata_entries += 1 if target_info else 0
    items = samples + target_info + metadata_entries
    if items and settings.exemplars_charged:
        items += exemplar_count
    return items


def target_info_expected(spread_ns: int) -> int:
    """Closed form from research D3, for a resource whose points span spread_ns (ms-aligned)."""
    return 1 if spread_ns == 0 else math.ceil(spread_ns / (150 * 10**9)) + 1
