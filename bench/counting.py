"""Counting throughput vs a full protobuf decode, in the same run, on the same bodies.

Full decode = what a receiver that does not care about allocation does: `ParseFromString` of the
real prometheus.WriteRequest, then a Python walk over every series summing its items.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from mimir_edge.core.remote_write import _count_rw1, count_write_request, decompress
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request
from mimir_edge.proto.prometheus import remote_pb2

REPEATS = 60
LIMIT = 64 << 20


def _full_decode(raw: bytes) -> int:
    request = remote_pb2.WriteRequest.FromString(raw)
    items = 0
    for series in request.timeseries:
        items += len(series.samples) + len(series.histograms) + len(series.exemplars)
    return items + len(request.metadata)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def run() -> dict[str, Any]:
    rows = []
    for series in (2000, 10000):
        shape = Shape(series=series, labels_per_series=8)
        raw = rw1_request(shape)
        body = compress(raw)
        content_type = RW1_HEADERS["content-type"]
        assert (
            _full_decode(raw)
            == count_write_request(body, content_type=content_type, max_decompressed_bytes=LIMIT).items
        )
        times: dict[str, list[float]] = {"full": [], "count": [], "full+snappy": [], "count+snappy": []}
        # Interleaved, so drift on the machine hits both sides alike.
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            _full_decode(raw)
            t1 = time.perf_counter()
            count_write_request(body, content_type=content_type, max_decompressed_bytes=LIMIT)
            t2 = time.perf_counter()
            _full_decode(decompress(body, LIMIT))
            t3 = time.perf_counter()
            times["full"].append(t1 - t0)
            times["count+snappy"].append(t2 - t1)
            times["full+snappy"].append(t3 - t2)
            t4 = time.perf_counter()
            _count_rw1(raw)
            times["count"].append(time.perf_counter() - t4)
        med = {k: _median_ms(v) for k, v in times.items()}
        mb = len(raw) / 1e6
        rows.append(
            {
                "series": series,
                "decompressed_bytes": len(raw),
                "compressed_bytes": len(body),
                "full_decode_ms": round(med["full"], 3),
                "count_ms": round(med["count"], 3),
                "full_decode_mb_s": round(mb / (med["full"] / 1000), 1),
                "count_mb_s": round(mb / (med["count"] / 1000), 1),
                "speedup": round(med["full"] / med["count"], 2),
                "full_decode_with_snappy_ms": round(med["full+snappy"], 3),
                "count_with_snappy_ms": round(med["count+snappy"], 3),
                "speedup_with_snappy": round(med["full+snappy"] / med["count+snappy"], 2),
            }
        )
    return {"repeats": REPEATS, "statistic": "median", "rows": rows}


def render(result: dict[str, Any]) -> list[str]:
    lines = [
        "| series | body (decompressed) | full decode | counting | full MB/s | counting MB/s | speedup | "
        "with snappy: full / counting | speedup |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['series']:,} | {r['decompressed_bytes'] / 1e6:.2f} MB | {r['full_decode_ms']} ms | "
            f"{r['count_ms']} ms | {r['full_decode_mb_s']} | {r['count_mb_s']} | **{r['speedup']}×** | "
            f"{r['full_decode_with_snappy_ms']} / {r['count_with_snappy_ms']} ms | {r['speedup_with_snappy']}× |"
        )
    lines.append("")
    lines.append(
        f"Median of {result['repeats']} interleaved runs; 8 labels and 1 float sample per series "
        "(a Prometheus-like batch). Target: counting ≥ 1.6× the full decode."
    )
    return lines
