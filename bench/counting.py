"""Counting throughput vs a full protobuf decode, in the same run, on the same bodies.

Full decode = what a receiver that does not care about allocation does: `ParseFromString` of the
real message (prometheus.WriteRequest; OTLP's ExportMetricsServiceRequest), then a Python walk
over every series (every OTLP data point) summing its items. Bodies: bench/bodies.py (with its
gateway-style OTLP batch), plus a 10,000-series remote_write batch.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from mimir_edge.core.otlp import count_otlp_request
from mimir_edge.core.otlp import decompress as otlp_decompress
from mimir_edge.core.remote_write import _count_rw1, count_write_request, decompress
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request
from mimir_edge.proto.opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as otlp_service
from mimir_edge.proto.prometheus import remote_pb2

from bench import bodies as bench_bodies

REPEATS = 60
LIMIT = 64 << 20


def _full_decode(raw: bytes) -> int:
    request = remote_pb2.WriteRequest.FromString(raw)
    items = 0
    for series in request.timeseries:
        items += len(series.samples) + len(series.histograms) + len(series.exemplars)
    return items + len(request.metadata)


def _full_decode_otlp(raw: bytes) -> int:
    request = otlp_service.ExportMetricsServiceRequest.FromString(raw)
    points = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                data = getattr(metric, metric.WhichOneof("data"))
                points += len(data.data_points)
    return points


def _otlp_row(body: bench_bodies.Body) -> dict[str, Any]:
    """OTLP: the product's counter (every Mimir rule applied) vs a full decode counting points."""
    ct, ce = body.headers["content-type"], body.headers["content-encoding"]
    raw = body.raw
    assert _full_decode_otlp(raw) == body.series
    times: dict[str, list[float]] = {"full": [], "count": [], "full+gzip": [], "count+gzip": []}
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        _full_decode_otlp(raw)
        t1 = time.perf_counter()
        count_otlp_request(raw, content_type=ct, content_encoding=None, max_decompressed_bytes=LIMIT)
        t2 = time.perf_counter()
        _full_decode_otlp(otlp_decompress(body.data, ce, LIMIT))
        t3 = time.perf_counter()
        count_otlp_request(body.data, content_type=ct, content_encoding=ce, max_decompressed_bytes=LIMIT)
        t4 = time.perf_counter()
        times["full"].append(t1 - t0)
        times["count"].append(t2 - t1)
        times["full+gzip"].append(t3 - t2)
        times["count+gzip"].append(t4 - t3)
    return _summary(body, {k: _median_ms(v) for k, v in times.items()}, "gzip")


def _summary(body: bench_bodies.Body, med: dict[str, float], codec: str) -> dict[str, Any]:
    mb = len(body.raw) / 1e6
    return {
        "body": body.describe(),
        "series": body.series,
        "decompressed_bytes": len(body.raw),
        "compressed_bytes": len(body.data),
        "codec": codec,
        "full_decode_ms": round(med["full"], 3),
        "count_ms": round(med["count"], 3),
        "full_decode_mb_s": round(mb / (med["full"] / 1000), 1),
        "count_mb_s": round(mb / (med["count"] / 1000), 1),
        "speedup": round(med["full"] / med["count"], 2),
        "full_decode_with_snappy_ms": round(med[f"full+{codec}"], 3),
        "count_with_snappy_ms": round(med[f"count+{codec}"], 3),
        "speedup_with_snappy": round(med[f"full+{codec}"] / med[f"count+{codec}"], 2),
    }


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _rw1_row(body: bench_bodies.Body) -> dict[str, Any]:
    raw, data = body.raw, body.data
    content_type = RW1_HEADERS["content-type"]
    assert _full_decode(raw) == count_write_request(data, content_type=content_type, max_decompressed_bytes=LIMIT).items
    times: dict[str, list[float]] = {"full": [], "count": [], "full+snappy": [], "count+snappy": []}
    # Interleaved, so drift on the machine hits both sides alike.
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        _full_decode(raw)
        t1 = time.perf_counter()
        count_write_request(data, content_type=content_type, max_decompressed_bytes=LIMIT)
        t2 = time.perf_counter()
        _full_decode(decompress(data, LIMIT))
        t3 = time.perf_counter()
        times["full"].append(t1 - t0)
        times["count+snappy"].append(t2 - t1)
        times["full+snappy"].append(t3 - t2)
        t4 = time.perf_counter()
        _count_rw1(raw)
        times["count"].append(time.perf_counter() - t4)
    return _summary(body, {k: _median_ms(v) for k, v in times.items()}, "snappy")


def run() -> dict[str, Any]:
    bodies = bench_bodies.build()
    big_raw = rw1_request(Shape(series=10000, labels_per_series=8))
    big = bench_bodies.Body(
        "10k", "remote_write 1.0", bench_bodies.PUSH_PATH, dict(RW1_HEADERS), 10000, 8, big_raw, compress(big_raw)
    )
    rows = [_rw1_row(b) for b in (bodies["realistic"], big, bodies["worst"])]
    rows += [_otlp_row(bodies["otlp"]), _otlp_row(bench_bodies.otlp_gateway())]
    return {"repeats": REPEATS, "statistic": "median", "rows": rows}


def render(result: dict[str, Any]) -> list[str]:
    lines = [
        "| body | full decode | counting | full MB/s | counting MB/s | speedup | "
        "with decompression: full / counting | speedup |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        name = r["body"]["name"] if "body" in r else f"{r['series']:,} series"
        lines.append(
            f"| {name} | {r['full_decode_ms']} ms | "
            f"{r['count_ms']} ms | {r['full_decode_mb_s']} | {r['count_mb_s']} | **{r['speedup']}×** | "
            f"{r['full_decode_with_snappy_ms']} / {r['count_with_snappy_ms']} ms | {r['speedup_with_snappy']}× |"
        )
    lines.append("")
    lines.append(
        f"Median of {result['repeats']} interleaved runs; one float sample per series (per OTLP point). "
        "remote_write counting = the upb counting views (`_count_rw1`; the compiled walker is the next table), "
        "with decompression = `count_write_request`, the RLS's path; full decode = `ParseFromString` + a Python "
        "walk; OTLP counting = `count_otlp_request` (every Mimir translator rule: "
        "target_info, metadata, temporality), full decode = `ParseFromString` + counting points. Bodies: protocol, "
        "series (points) × labels, compressed / decompressed (snappy for remote_write, gzip for OTLP). "
        "Target: counting ≥ 1.6× the full decode."
    )
    return lines
