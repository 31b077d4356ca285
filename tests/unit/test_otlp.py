"""OTLP counting (core/otlp.py): the exact count of every point type under each tenant setting,
protobuf and JSON alike, Mimir's content rules, bounded decompression, and the Status answers.

Expected counts come from tests/otlp_requests.py, which walks the fully decoded request point by
point, and from hand-computed numbers; never from the product's counter.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import cramjam
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from mimir_edge.core.errors import InvalidBody, PayloadTooLarge, UnsupportedMediaType
from mimir_edge.core.otlp import (
    JSON,
    PROTOBUF,
    OtlpCounts,
    OtlpFormat,
    count_otlp_request,
    decompress,
    status_body,
    target_info_samples,
)
from mimir_edge.proto.opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc
from mimir_edge.proto.opentelemetry.proto.metrics.v1 import metrics_pb2 as m

from tests.otlp_requests import (
    CUMULATIVE,
    DELTA,
    T0,
    Settings,
    every_point_type,
    exponential_points,
    histogram_points,
    mimir_charge,
    number_points,
    request,
    resource,
    summary_points,
    target_info_expected,
)
from tests.wire_bodies import varint

CAP = 4 << 20
SETTINGS = [
    Settings(nhcb=n, native_delta=d, exemplars_charged=e)
    for n in (False, True)
    for d in (False, True)
    for e in (False, True)
]


def count(req: svc.ExportMetricsServiceRequest, **kw: str | None) -> OtlpCounts:
    return count_otlp_request(
        req.SerializeToString(),
        content_type=kw.get("content_type", PROTOBUF),
        content_encoding=kw.get("content_encoding"),
        max_decompressed_bytes=CAP,
    )


def charged(counts: OtlpCounts, s: Settings) -> int:
    """What the one decision charges (admission.items_to_charge's rule, applied by hand)."""
    items, exemplars = counts.pick(nhcb=s.nhcb, delta=s.native_delta)
    return items + exemplars if items and s.exemplars_charged else items


# --- exact counts, by hand ---


def test_one_gauge_point() -> None:
    c = count(request((resource(), [m.Metric(name="g", gauge=m.Gauge(data_points=number_points(1, n_exemplars=4)))])))
    # 1 sample + target_info 1 + metadata for g and target_info; gauge exemplars are dropped.
    assert (c.base_items, c.exemplars, c.target_info_samples, c.data_points) == (1 + 1 + 2, 0, 1, 1)


def test_classic_histogram_point_with_and_without_sum() -> None:
    for with_sum, samples in ((True, 5 + 1 + 1 + 1), (False, 5 + 1 + 1)):
        metric = m.Metric(
            name="h",
            histogram=m.Histogram(
                data_points=histogram_points(1, bounds=5, with_sum=with_sum, n_exemplars=3),
                aggregation_temporality=CUMULATIVE,
            ),
        )
        c = count(request((resource(), [metric])))
        assert c.base_items == samples + 1 + 2, with_sum
        assert c.nhcb_items == 1 + 1 + 2  # one native histogram with custom buckets
        assert c.exemplars == 3  # every exemplar goes to a bucket series


def test_histogram_with_fewer_counts_than_bounds() -> None:
    point = m.HistogramDataPoint(time_unix_nano=T0, count=1, bucket_counts=[1, 2], explicit_bounds=[1.0, 2.0, 3.0])
    metric = m.Metric(name="h", histogram=m.Histogram(data_points=[point], aggregation_temporality=CUMULATIVE))
    # min(2 counts, 3 bounds) buckets + +Inf + _count, no _sum.
    assert count(request((resource(), [metric]))).base_items == (2 + 1 + 1) + 1 + 2


def test_summary_exponential_and_sums() -> None:
    metrics = [
        m.Metric(name="s", summary=m.Summary(data_points=summary_points(2, quantiles=4))),
        m.Metric(
            name="e",
            exponential_histogram=m.ExponentialHistogram(
                data_points=exponential_points(3, n_exemplars=1), aggregation_temporality=CUMULATIVE
            ),
        ),
        m.Metric(
            name="c",
            sum=m.Sum(
                data_points=number_points(2, n_exemplars=2), aggregation_temporality=CUMULATIVE, is_monotonic=True
            ),
        ),
        m.Metric(name="u", sum=m.Sum(data_points=number_points(2, n_exemplars=2), aggregation_temporality=CUMULATIVE)),
    ]
    c = count(request((resource(), metrics)))
    samples = 2 * (4 + 2) + 3 + 2 + 2
    assert c.base_items == samples + 1 + 5
    # Exponential histograms and monotonic sums keep theirs; a non-monotonic sum is a gauge.
    assert c.exemplars == 3 * 1 + 2 * 2


def test_delta_and_unspecified_temporality() -> None:
    metrics = [
        m.Metric(
            name="d",
            sum=m.Sum(data_points=number_points(3, n_exemplars=1), aggregation_temporality=DELTA, is_monotonic=True),
        ),
        m.Metric(name="x", sum=m.Sum(data_points=number_points(4), is_monotonic=True)),  # unspecified
        m.Metric(name="g", gauge=m.Gauge(data_points=number_points(1))),
    ]
    c = count(request((resource(), metrics)))
    assert c.base_items == 1 + 1 + 2  # g, target_info, their metadata
    assert c.delta_items == 1 + 3 + 1 + 3  # and d with its metadata
    assert (c.exemplars, c.delta_exemplars) == (0, 3)


def test_dropped_metrics_charge_nothing_but_still_date_target_info() -> None:
    metrics = [
        m.Metric(name="", gauge=m.Gauge(data_points=number_points(2, t=T0 + 300 * 10**9))),  # no name
        m.Metric(name="empty", gauge=m.Gauge()),
        m.Metric(name="g", gauge=m.Gauge(data_points=number_points(1))),
    ]
    c = count(request((resource(), metrics)))
    # target_info spans the unnamed metric's points too: T0, +150 s, +300 s.
    assert c.target_info_samples == 3
    assert c.base_items == 1 + 3 + 2


@pytest.mark.parametrize(
    ("spread_ns", "samples"),
    [
        (0, 1),
        (1, 1),  # T0 is ms-aligned: T0 + 1 ns is in the same millisecond, de-duplicated
        (10**6 - 1, 1),
        (10**6, 2),
        (150 * 10**9, 2),
        (150 * 10**9 + 1, 2),  # the last sample falls in the run's last millisecond
        (150 * 10**9 + 10**6, 3),
        (600 * 10**9, 5),
    ],
)
def test_target_info_samples(spread_ns: int, samples: int) -> None:
    assert target_info_samples(T0, T0 + spread_ns) == samples


@pytest.mark.parametrize("seed", range(6))
def test_target_info_spans_points_at_different_times_in_any_order(seed: int) -> None:
    # The earliest and latest are found without a Python loop when a kind's many points share one
    # time; here they do not: shuffled times, the extremes anywhere in the list, in several kinds,
    # many gauge points (over _FEW_TIMESTAMPS), few of the others.
    rng = random.Random(seed)
    offsets = [rng.randrange(0, 900 * 10**9, 10**6) for _ in range(12)]
    rng.shuffle(offsets)

    def at(i: int) -> int:
        return T0 + offsets[i % len(offsets)]

    gauge_points = [p for i in range(40) for p in number_points(1, t=at(i if i % 6 else 0))]
    metrics = [
        m.Metric(name="g", gauge=m.Gauge(data_points=gauge_points)),
        m.Metric(
            name="s",
            sum=m.Sum(
                data_points=[p for i in range(6, 9) for p in number_points(1, t=at(i))],
                aggregation_temporality=CUMULATIVE,
                is_monotonic=True,
            ),
        ),
        m.Metric(
            name="q", summary=m.Summary(data_points=[p for i in range(9, 12) for p in summary_points(1, t=at(i))])
        ),
    ]
    req = request((resource(), metrics))
    counts = count(req)
    assert counts.target_info_samples == target_info_expected(max(offsets) - min(offsets))
    assert counts.base_items == mimir_charge(req)


@pytest.mark.parametrize("later_kind", ["gauge", "sum"])
def test_target_info_spans_many_points_sharing_a_time_and_a_later_metric(later_kind: str) -> None:
    spread = 400 * 10**9
    shared = number_points(40, t=T0 + (spread if later_kind == "gauge" else 0))
    one = number_points(1, t=T0 + (0 if later_kind == "gauge" else spread))
    metrics = [
        m.Metric(name="g", gauge=m.Gauge(data_points=shared)),
        m.Metric(name="s", sum=m.Sum(data_points=one, aggregation_temporality=CUMULATIVE, is_monotonic=True)),
    ]
    assert count(request((resource(), metrics))).target_info_samples == target_info_expected(spread) == 4


def test_target_info_needs_a_non_identifying_attribute_and_job_or_instance() -> None:
    g = [m.Metric(name="g", gauge=m.Gauge(data_points=number_points(1)))]
    assert count(request((resource(extra=0), g))).target_info_samples == 0  # identifying only
    assert count(request((resource(None, instance=None, extra=2), g))).target_info_samples == 0  # no job/instance
    assert count(request((resource(None, instance="i", extra=1), g))).target_info_samples == 1
    # Two resources with the same attributes make one target_info series: one sample.
    assert count(request((resource(), g), (resource(), g))).target_info_samples == 1
    assert count(request((resource(), g), (resource("other"), g))).target_info_samples == 2


# --- against the point-by-point reference, every setting ---


def mixed_requests() -> list[tuple[str, svc.ExportMetricsServiceRequest]]:
    return [
        ("every type", request((resource(), every_point_type()))),
        ("no sums", request((resource(), every_point_type(with_sum=False, n_exemplars=0)))),
        (
            "several resources",
            request(
                (resource(), every_point_type()),
                (resource("b", instance=None, extra=0), every_point_type(t=T0 + 400 * 10**9)),
                (resource("c", extra=5), every_point_type(with_sum=False, t=T0 + 7 * 10**6)),
                (resource(), every_point_type(t=T0 + 10**9)),
            ),
        ),
        ("identifying-only resource", request((resource(extra=0), every_point_type()))),
    ]


def families_across_resources() -> svc.ExportMetricsServiceRequest:
    """The same families in several resources, described alike or not, delta or cumulative."""

    def gauge(description: str) -> m.Metric:
        return m.Metric(name="a", description=description, gauge=m.Gauge(data_points=number_points(1)))

    def counter(name: str, description: str, temporality: int) -> m.Metric:
        points = number_points(1)
        return m.Metric(
            name=name,
            description=description,
            sum=m.Sum(data_points=points, aggregation_temporality=temporality, is_monotonic=True),
        )

    same = [m.Metric(name="b", unit="s", gauge=m.Gauge(data_points=number_points(2)))]
    return request(
        (resource("r1"), [gauge("x"), counter("d", "p", DELTA), counter("e", "q", DELTA), *same]),
        (resource("r2"), [gauge("y"), counter("d", "p", CUMULATIVE), counter("e", "r", CUMULATIVE), *same]),
        (resource("r3"), [gauge("x"), counter("e", "q", DELTA), *same]),
    )


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
def test_metadata_of_families_repeated_across_resources(settings: Settings) -> None:
    req = families_across_resources()
    assert charged(count(req), settings) == mimir_charge(req, settings)
    # By hand: a (x, y, x) 3 entries, b 1, d 1, e 1 cumulative or 3 with deltas, target_info 1.
    c = count(req)
    assert c.base_items - c.target_info_samples - (3 + 1 + 1 + 6) == 3 + 1 + 1 + 1 + 1
    assert c.delta_items - c.target_info_samples - (3 + 2 + 3 + 6) == 3 + 1 + 1 + 3 + 1


@pytest.mark.parametrize(("name", "req"), mixed_requests(), ids=[n for n, _ in mixed_requests()])
@pytest.mark.parametrize("settings", SETTINGS, ids=str)
def test_counts_match_the_reference(name: str, req: svc.ExportMetricsServiceRequest, settings: Settings) -> None:
    assert charged(count(req), settings) == mimir_charge(req, settings)


def otlp_json(req: svc.ExportMetricsServiceRequest, *, enums_as_numbers: bool = True) -> bytes:
    """OTLP/JSON as exporters write it: lowerCamelCase, enums as numbers (OTLP's rule; names when
    not `enums_as_numbers`), 64-bit integers as strings, trace and span ids in hex."""
    doc = json_format.MessageToDict(req, use_integers_for_enums=enums_as_numbers)

    def hexify(node: object) -> None:
        if isinstance(node, dict):
            for key in ("traceId", "spanId"):
                if key in node:
                    node[key] = base64.b64decode(node[key]).hex()
            for value in node.values():
                hexify(value)
        elif isinstance(node, list):
            for value in node:
                hexify(value)

    hexify(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("name", "req"), mixed_requests(), ids=[n for n, _ in mixed_requests()])
def test_json_counts_as_protobuf(name: str, req: svc.ExportMetricsServiceRequest) -> None:
    body = otlp_json(req)
    assert b'"timeUnixNano": "' in body and b'"aggregationTemporality": 2' in body
    as_json = count_otlp_request(body, content_type=JSON, content_encoding=None, max_decompressed_bytes=CAP)
    as_proto = count(req)
    assert as_json.format is OtlpFormat.JSON
    for s in SETTINGS:
        assert charged(as_json, s) == charged(as_proto, s) == mimir_charge(req, s)
    assert as_json.first_series_labels == as_proto.first_series_labels


def _len_field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


@pytest.mark.parametrize("kind", [5, 6], ids=["array values", "kvlist values"])
def test_a_resource_attribute_nested_thousands_deep_counts_as_a_flat_one(kind: int) -> None:
    """Mimir's OTLP/JSON reader takes values nested at any depth; protobuf's decoder stops at 100
    messages, so nested values are not decoded for counting (they change no count)."""
    flat = request((resource(), every_point_type()))
    deep = _len_field(1, b"leaf")  # AnyValue.string_value
    for _ in range(3000):
        inner = _len_field(2, deep) if kind == 6 else deep  # KeyValue.value, or ArrayValue.values
        deep = _len_field(kind, _len_field(1, (_len_field(1, b"k") if kind == 6 else b"") + inner))
    # The request's first resource gets one more attribute (field 1 of Resource): rebuilt by hand.
    rm = flat.resource_metrics[0]
    attribute = _len_field(1, b"nested") + _len_field(2, deep)
    resource_bytes = rm.resource.SerializeToString() + _len_field(1, attribute)
    rest = b"".join(_len_field(2, sm.SerializeToString()) for sm in rm.scope_metrics)
    body = bytes(_len_field(1, _len_field(1, resource_bytes) + rest))
    with_string = svc.ExportMetricsServiceRequest.FromString(flat.SerializeToString())
    with_string.resource_metrics[0].resource.attributes.add(key="nested").value.string_value = "x"
    counted = count_otlp_request(body, content_type=PROTOBUF, content_encoding=None, max_decompressed_bytes=CAP)
    for s in SETTINGS:
        assert charged(counted, s) == mimir_charge(with_string, s)


def test_first_series_labels_carry_the_ha_attributes() -> None:
    point = number_points(1)[0]
    point.attributes.add(key="cluster").value.string_value = "eu"
    point.attributes.add(key="__replica__").value.string_value = "r1"
    delta = m.Metric(name="d", sum=m.Sum(data_points=number_points(1), aggregation_temporality=DELTA))
    c = count(request((resource(), [delta, m.Metric(name="g", gauge=m.Gauge(data_points=[point]))])))
    # The delta metric converts to nothing under Mimir's defaults: the gauge is the first series.
    labels = dict(c.first_series_labels)
    assert (labels["cluster"], labels["__replica__"], labels["job"], labels["instance"]) == (
        "eu",
        "r1",
        "checkout",
        "pod-1",
    )


# --- content rules ---


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json; charset=utf-8", "application/protobuf", "text/plain"]
)
def test_content_types_other_than_mimirs_are_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType, match="unsupported content type"):
        count_otlp_request(b"", content_type=content_type, content_encoding=None, max_decompressed_bytes=CAP)


@pytest.mark.parametrize("encoding", ["snappy", "GZIP", "deflate", "br", "gzip, zstd"])
def test_encodings_other_than_mimirs_are_415(encoding: str) -> None:
    with pytest.raises(UnsupportedMediaType, match="unsupported compression"):
        count_otlp_request(b"", content_type=PROTOBUF, content_encoding=encoding, max_decompressed_bytes=CAP)


def compress(raw: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(raw)
    return bytes(getattr(cramjam, encoding).compress(raw))


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_each_encoding_counts_the_same(encoding: str) -> None:
    req = request((resource(), every_point_type()))
    c = count_otlp_request(
        compress(req.SerializeToString(), encoding),
        content_type=PROTOBUF,
        content_encoding=encoding,
        max_decompressed_bytes=CAP,
    )
    assert c.base_items == count(req).base_items


def test_gzip_members_are_read_in_turn_as_gos_gzip_reader_does() -> None:
    raw = request((resource(), every_point_type())).SerializeToString()
    # A protobuf message split anywhere is the concatenation of its parts.
    members = gzip.compress(raw[:101]) + gzip.compress(raw[101:])
    c = count_otlp_request(members, content_type=PROTOBUF, content_encoding="gzip", max_decompressed_bytes=CAP)
    assert c.base_items == count(request((resource(), every_point_type()))).base_items
    assert c.decompressed_bytes == len(raw)


@pytest.mark.parametrize(
    "body",
    [
        gzip.compress(b"\x0a\x00")[:-3],  # truncated trailer
        gzip.compress(b"\x0a\x00")[:12],  # truncated deflate stream
        gzip.compress(b"\x0a\x00") + b"\x00\x00",  # padding after a member is not a member
        gzip.compress(b"\x0a\x00") + b"garbage",
        gzip.compress(b"\x0a\x00")[:-8] + b"\x00" * 8,  # wrong CRC and size
        b"",
    ],
    ids=["truncated-trailer", "truncated-stream", "zero-padding", "garbage-after", "bad-crc", "empty"],
)
def test_broken_gzip_is_400(body: bytes) -> None:
    with pytest.raises(InvalidBody, match=r"^gzip: "):
        count_otlp_request(body, content_type=PROTOBUF, content_encoding="gzip", max_decompressed_bytes=CAP)


@pytest.mark.parametrize(
    ("body", "content_type", "encoding"),
    [
        (b"\xff\xff\xff\xff", PROTOBUF, None),
        (request((resource(), every_point_type())).SerializeToString()[:-7], PROTOBUF, None),
        (b'{"resourceMetrics": [', JSON, None),
        (b'{"resourceMetrics": "no"}', JSON, None),
        (b"[" * 100_000, JSON, None),
        (b"not gzip at all", PROTOBUF, "gzip"),
        (b"not zstd at all", PROTOBUF, "zstd"),
        (b"not lz4 at all", PROTOBUF, "lz4"),
        (gzip.compress(b"\x0a\xff\xff\xff\xff\x0f"), PROTOBUF, "gzip"),
    ],
)
def test_garbage_is_400(body: bytes, content_type: str, encoding: str | None) -> None:
    with pytest.raises(InvalidBody):
        count_otlp_request(body, content_type=content_type, content_encoding=encoding, max_decompressed_bytes=CAP)


# --- bombs ---

BOMB_BYTES = 256 << 20


def bomb(encoding: str) -> bytes:
    """BOMB_BYTES of zeros, compressed, built in 1 MiB steps (never held whole)."""
    chunk = bytes(1 << 20)
    if encoding == "gzip":
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        return b"".join([z.compress(chunk) for _ in range(BOMB_BYTES // len(chunk))] + [z.flush()])
    compressor = getattr(cramjam, encoding).Compressor()
    for _ in range(BOMB_BYTES // len(chunk)):
        compressor.compress(chunk)
    return bytes(compressor.finish())


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_bombs_are_refused_at_the_cap(encoding: str) -> None:
    body = bomb(encoding)
    assert len(body) < BOMB_BYTES // 100
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match="larger than the allowed limit of 4194304 bytes"):
            count_otlp_request(body, content_type=PROTOBUF, content_encoding=encoding, max_decompressed_bytes=CAP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The output buffer is the only large allocation: at most the cap plus one byte, and for gzip
    # one step of max_length beyond what is kept.
    assert peak < 2 * CAP + (1 << 20), peak


_RSS_PROBE = """
import resource, sys
from mimir_edge.core.errors import PayloadTooLarge
from mimir_edge.core.otlp import count_otlp_request
bodies = [(e, open(p, "rb").read()) for e, p in zip(sys.argv[1::2], sys.argv[2::2])]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for encoding, body in bodies:
    try:
        count_otlp_request(body, content_type="application/x-protobuf", content_encoding=encoding,
                           max_decompressed_bytes=4 << 20)
    except PayloadTooLarge:
        pass
    else:
        raise SystemExit("not refused: " + encoding)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_bombs_do_not_grow_the_process(tmp_path: Path) -> None:
    """The native decompressors' own memory is outside tracemalloc: the peak RSS of a fresh
    process decompressing all three bombs grows by far less than one bomb's 256 MiB."""
    args = []
    for encoding in ("gzip", "zstd", "lz4"):
        path = tmp_path / f"bomb.{encoding}"
        path.write_bytes(bomb(encoding))
        args += [encoding, str(path)]
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE, *args], check=True, capture_output=True, text=True)
    grown_kib = int(out.stdout.strip())
    assert grown_kib < 48 * 1024, f"peak RSS grew by {grown_kib} KiB"


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_a_very_compressible_body_is_not_given_a_buffer_of_the_cap(encoding: str) -> None:
    # Zero-filling a buffer of the cap (50 MiB by default) costs more than counting the request:
    # the buffer grows from a guess instead, whatever the compression ratio.
    raw = b"\x0a\x00" * (1 << 20)  # 2 MiB, compressed 300-5000x
    body = compress(raw, encoding)
    big_cap = 256 << 20
    tracemalloc.start()
    try:
        assert decompress(body, encoding, big_cap) == raw
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(raw), peak


def test_a_gzip_trailers_declared_size_is_only_believed_up_to_deflates_ratio() -> None:
    body = gzip.compress(b"\x0a\x00")[:-4] + (2**32 - 1).to_bytes(4, "little")
    tracemalloc.start()
    try:
        with pytest.raises(InvalidBody):
            decompress(body, "gzip", 256 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_an_uncompressed_body_over_the_cap_is_413() -> None:
    with pytest.raises(PayloadTooLarge, match=f"message size of {CAP + 1} bytes"):
        count_otlp_request(bytes(CAP + 1), content_type=PROTOBUF, content_encoding=None, max_decompressed_bytes=CAP)


def test_a_body_decompressing_to_exactly_the_cap_passes_the_size_check() -> None:
    # CAP zero bytes are not a valid request (field 0): refused as 400, not 413.
    for encoding in ("gzip", "zstd", "lz4"):
        with pytest.raises(InvalidBody):
            count_otlp_request(
                compress(bytes(CAP), encoding),
                content_type=PROTOBUF,
                content_encoding=encoding,
                max_decompressed_bytes=CAP,
            )


# --- answers ---


def test_status_bodies() -> None:
    content_type, body = status_body(OtlpFormat.PROTOBUF, 8, "too much")
    assert content_type == PROTOBUF
    status = status_pb2.Status.FromString(body)
    assert (status.code, status.message) == (8, "too much")
    content_type, body = status_body(OtlpFormat.JSON, 8, "too much")
    assert (content_type, json.loads(body)) == (JSON, {"code": 8, "message": "too much"})


def test_corrupted_requests_are_counted_or_refused_as_400() -> None:
    """Random corruptions of real requests (bytes changed, cut, inserted; protobuf and JSON): each is
    either counted or refused with InvalidBody, never anything else."""
    rng = random.Random(7)
    proto = request((resource(), every_point_type()), (resource("b"), every_point_type(t=T0 + 10**12)))
    sources = [(proto.SerializeToString(), PROTOBUF), (otlp_json(proto), JSON)]
    outcomes = {"counted": 0, "refused": 0}
    for i in range(600):
        raw, content_type = sources[i % 2]
        body = bytearray(raw)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(body))
            op = rng.random()
            if op < 0.4:
                body[pos] = rng.randrange(256)
            elif op < 0.7:
                del body[pos : pos + rng.randint(1, 40)]
            else:
                body[pos:pos] = rng.randbytes(rng.randint(1, 8))
        try:
            count_otlp_request(
                bytes(body), content_type=content_type, content_encoding=None, max_decompressed_bytes=CAP
            )
            outcomes["counted"] += 1
        except InvalidBody:
            outcomes["refused"] += 1
    assert outcomes["counted"] and outcomes["refused"], outcomes


def test_invalid_utf8_in_strings_is_counted_not_refused() -> None:
    """Mimir's OTLP decoder (pdata) does not check UTF-8; its validation refuses such labels later.
    So counting reads strings as bytes and charges the request as any other."""
    req = request((resource(), every_point_type()))
    req.resource_metrics[0].scope_metrics[0].scope.name = "scope"
    raw = req.SerializeToString()
    broken = raw.replace(b"checkout", b"check\xffut").replace(b"scope", b"sc\xfepe")
    assert broken != raw
    c = count_otlp_request(broken, content_type=PROTOBUF, content_encoding=None, max_decompressed_bytes=CAP)
    assert c.base_items == count(req).base_items
    assert dict(c.first_series_labels)["job"] == "check\ufffdut"


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
def test_a_resource_mixing_charged_and_dropped_metrics_of_one_kind(settings: Settings) -> None:
    """Exemplars and quantiles are taken per resource when every metric of a kind is charged alike,
    per metric otherwise: both ways give the reference's count."""
    mixed = [
        m.Metric(name="", summary=m.Summary(data_points=summary_points(2, quantiles=5))),  # dropped
        m.Metric(name="s", summary=m.Summary(data_points=summary_points(1, quantiles=3))),
        m.Metric(
            name="",
            sum=m.Sum(
                data_points=number_points(2, n_exemplars=4), aggregation_temporality=CUMULATIVE, is_monotonic=True
            ),
        ),
        m.Metric(
            name="c",
            sum=m.Sum(
                data_points=number_points(1, n_exemplars=2), aggregation_temporality=CUMULATIVE, is_monotonic=True
            ),
        ),
        m.Metric(
            name="h",
            histogram=m.Histogram(data_points=histogram_points(2, n_exemplars=3), aggregation_temporality=DELTA),
        ),
        m.Metric(
            name="h2",
            histogram=m.Histogram(data_points=histogram_points(1, n_exemplars=1), aggregation_temporality=CUMULATIVE),
        ),
    ]
    alike = [
        m.Metric(name="s", summary=m.Summary(data_points=summary_points(3, quantiles=2))),
        m.Metric(
            name="c",
            sum=m.Sum(
                data_points=number_points(2, n_exemplars=2), aggregation_temporality=CUMULATIVE, is_monotonic=True
            ),
        ),
    ]
    req = request((resource(), mixed), (resource("b"), alike))
    assert charged(count(req), settings) == mimir_charge(req, settings)


def random_batch(rng: random.Random) -> svc.ExportMetricsServiceRequest:
    """A batch as a gateway collector makes them: several resources, families repeated across them
    (described alike or not), every kind and temporality, points sharing a time or not, few or
    many of them (either side of the counter's _FEW_TIMESTAMPS), with or without exemplars."""

    def times(n: int) -> list[int]:
        if rng.random() < 0.5:
            return [T0 + rng.randrange(0, 10**6 * 10**3, 10**6)] * n
        return [T0 + rng.randrange(0, 10**6 * 10**3, 10**6) for _ in range(n)]

    def points(kind: str) -> list[object]:
        n = rng.choice([0, 1, 2, 3, 17, 40])
        ex = rng.choice([0, 0, 1, 2])
        make = {
            "gauge": lambda t: number_points(1, t=t, n_exemplars=ex),
            "sum": lambda t: number_points(1, t=t, n_exemplars=ex),
            "histogram": lambda t: histogram_points(
                1, bounds=rng.randrange(4), with_sum=rng.random() < 0.5, n_exemplars=ex, t=t
            ),
            "exponential_histogram": lambda t: exponential_points(1, n_exemplars=ex, t=t),
            "summary": lambda t: summary_points(1, quantiles=rng.randrange(4), t=t),
        }[kind]
        return [p for t in times(n) for p in make(t)]

    def metric() -> m.Metric:
        kind = rng.choice(["gauge", "sum", "histogram", "exponential_histogram", "summary"])
        metric = m.Metric(name=rng.choice(["a", "b", "c", "d", ""]), description=rng.choice(["", "x", "y"]))
        data = getattr(metric, kind)
        data.data_points.extend(points(kind))
        if kind in ("sum", "histogram", "exponential_histogram"):
            data.aggregation_temporality = rng.choice([0, DELTA, CUMULATIVE, CUMULATIVE])
        if kind == "sum":
            data.is_monotonic = rng.random() < 0.6
        return metric

    return request(
        *[
            (resource(rng.choice(["s1", "s2"]), instance=f"pod-{rng.randrange(3)}"), [metric() for _ in range(8)])
            for _ in range(rng.randint(1, 6))
        ]
    )


@pytest.mark.parametrize("seed", range(60))
def test_random_batches_match_the_reference(seed: int) -> None:
    req = random_batch(random.Random(seed))
    counts = count(req)
    for settings in SETTINGS:
        assert charged(counts, settings) == mimir_charge(req, settings), settings
