"""Counting remote_write bodies: exact counts, typed errors, and nothing else ever raised."""

from __future__ import annotations

import pytest
import snappy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mimir_edge.core.errors import EdgeError, InvalidBody, PayloadTooLarge, UnsupportedMediaType
from mimir_edge.core.remote_write import (
    Protocol,
    count_write_request,
    declared_length,
    protocol_for,
)
from mimir_edge.localstack.traffic import RW1_HEADERS, RW2_HEADERS, Shape, compress, rw1_request, rw2_request

LIMIT = 10 * 1024 * 1024
RW1_TYPE = RW1_HEADERS["content-type"]
RW2_TYPE = RW2_HEADERS["content-type"]

SHAPES = [
    Shape(series=0),
    Shape(series=1),
    Shape(series=2000),
    Shape(series=7, samples_per_series=3),
    Shape(series=5, samples_per_series=0, histograms_per_series=2),
    Shape(series=4, samples_per_series=2, histograms_per_series=1, exemplars_per_series=3, metadata=3),
    Shape(series=3, samples_per_series=1, exemplars_per_series=1, labels_per_series=40),
]


@pytest.mark.parametrize("shape", SHAPES, ids=repr)
@pytest.mark.parametrize(
    ("build", "content_type", "protocol"),
    [
        (rw1_request, RW1_TYPE, Protocol.RW1),
        (rw2_request, RW2_TYPE, Protocol.RW2),
    ],
)
def test_exact_counts(shape: Shape, build, content_type: str, protocol: Protocol) -> None:  # type: ignore[no-untyped-def]
    raw = build(shape)
    counts = count_write_request(compress(raw), content_type=content_type, max_decompressed_bytes=LIMIT)
    assert counts.protocol is protocol
    assert counts.series == shape.series
    assert counts.float_samples == shape.series * shape.samples_per_series
    assert counts.histogram_samples == shape.series * shape.histograms_per_series
    assert counts.exemplars == shape.series * shape.exemplars_per_series
    assert counts.metadata == shape.metadata
    assert counts.items == shape.items
    assert counts.decompressed_bytes == len(raw)


def test_rw2_metadata_without_a_type_is_not_counted() -> None:
    from mimir_edge.proto.io.prometheus.write.v2 import types_pb2 as v2

    req = v2.Request(symbols=["", "__name__", "up"])
    typed = req.timeseries.add(labels_refs=[1, 2])
    typed.samples.add(value=1, timestamp=1)
    typed.metadata.type = v2.Metadata.METRIC_TYPE_GAUGE
    untyped = req.timeseries.add(labels_refs=[1, 2])
    untyped.samples.add(value=1, timestamp=1)
    untyped.metadata.SetInParent()
    counts = count_write_request(compress(req.SerializeToString()), content_type=RW2_TYPE, max_decompressed_bytes=LIMIT)
    assert (counts.series, counts.float_samples, counts.metadata) == (2, 2, 1)


@pytest.mark.parametrize(
    ("content_type", "protocol"),
    [
        (None, Protocol.RW1),
        ("", Protocol.RW1),
        ("application/x-protobuf", Protocol.RW1),
        ("application/x-protobuf;proto=prometheus.WriteRequest", Protocol.RW1),
        ("Application/X-Protobuf; proto=io.prometheus.write.v2.Request", Protocol.RW2),
        ('application/x-protobuf; proto="io.prometheus.write.v2.Request"', Protocol.RW2),
    ],
)
def test_protocol_from_content_type(content_type: str | None, protocol: Protocol) -> None:
    assert protocol_for(content_type) is protocol


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "text/plain",
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
    ],
)
def test_unsupported_content_type_is_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as err:
        count_write_request(compress(b""), content_type=content_type, max_decompressed_bytes=LIMIT)
    assert err.value.http_status == 415


def test_unsupported_content_encoding_is_415() -> None:
    with pytest.raises(UnsupportedMediaType):
        count_write_request(b"", content_type=RW1_TYPE, content_encoding="gzip", max_decompressed_bytes=LIMIT)


def _valid_body() -> bytes:
    return compress(rw1_request(Shape(series=50, exemplars_per_series=1)))


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("empty", b""),
        ("not snappy", b"this is plainly not snappy"),
        ("truncated", _valid_body()[:-17]),
        ("corrupt", _valid_body()[:40] + bytes(30) + _valid_body()[70:]),
        ("lying length header", b"\x80\x80\x01" + _valid_body()[3:]),
        ("snappy of garbage protobuf", compress(b"\xff\xff\xff\xff\xff\xff")),
        ("snappy of truncated protobuf", compress(rw1_request(Shape(series=3))[:-5])),
        ("raw protobuf without snappy", rw1_request(Shape(series=3))),
    ],
)
def test_invalid_bodies_raise_invalid_body(name: str, body: bytes) -> None:
    with pytest.raises(InvalidBody) as err:
        count_write_request(body, content_type=RW1_TYPE, max_decompressed_bytes=LIMIT)
    assert err.value.http_status == 400


def test_a_field_of_the_wrong_wire_type_is_invalid() -> None:
    # field 1 (timeseries) as a varint instead of a length-delimited message
    with pytest.raises(InvalidBody):
        count_write_request(compress(b"\x08\x01"), content_type=RW1_TYPE, max_decompressed_bytes=LIMIT)


def test_oversize_declared_length_is_refused_before_decompressing() -> None:
    # A 14-byte "snappy bomb" header declaring 4 GiB - 1: refused from the header alone.
    bomb = b"\xff\xff\xff\xff\x0f" + b"\x00" * 9
    assert declared_length(bomb) == 2**32 - 1
    with pytest.raises(PayloadTooLarge) as err:
        count_write_request(bomb, content_type=RW1_TYPE, max_decompressed_bytes=LIMIT)
    assert err.value.http_status == 413


def test_bound_is_inclusive() -> None:
    raw = rw1_request(Shape(series=10))
    body = compress(raw)
    assert count_write_request(body, content_type=RW1_TYPE, max_decompressed_bytes=len(raw)).series == 10
    with pytest.raises(PayloadTooLarge):
        count_write_request(body, content_type=RW1_TYPE, max_decompressed_bytes=len(raw) - 1)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=4096), rw2=st.booleans())
def test_random_bytes_never_raise_anything_else(body: bytes, rw2: bool) -> None:
    try:
        count_write_request(body, content_type=RW2_TYPE if rw2 else RW1_TYPE, max_decompressed_bytes=LIMIT)
    except EdgeError as exc:
        assert exc.http_status in (400, 413)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=4096), rw2=st.booleans())
def test_random_snappy_payloads_never_raise_anything_else(raw: bytes, rw2: bool) -> None:
    try:
        count_write_request(compress(raw), content_type=RW2_TYPE if rw2 else RW1_TYPE, max_decompressed_bytes=LIMIT)
    except EdgeError as exc:
        assert exc.http_status in (400, 413)


_valid = rw1_request(Shape(series=20, histograms_per_series=1, exemplars_per_series=1, metadata=2))


@settings(max_examples=1500, deadline=None)
@given(data=st.data())
def test_mutated_valid_bodies_never_raise_anything_else(data: st.DataObject) -> None:
    raw = bytearray(_valid)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    body = bytes(snappy.compress(bytes(raw[:cut])))
    try:
        counts = count_write_request(body, content_type=RW1_TYPE, max_decompressed_bytes=LIMIT)
    except EdgeError as exc:
        assert exc.http_status == 400
    else:
        assert counts.decompressed_bytes == cut


def _rw1_ha_request(first: list[tuple[str, str]], second: list[tuple[str, str]]) -> bytes:
    from mimir_edge.proto.prometheus import remote_pb2

    req = remote_pb2.WriteRequest()
    for labels in (first, second):
        series = req.timeseries.add()
        for name, value in labels:
            series.labels.add(name=name, value=value)
        series.samples.add(value=1, timestamp=1)
    return req.SerializeToString()


def _rw2_ha_request(first: list[tuple[str, str]], second: list[tuple[str, str]]) -> bytes:
    from mimir_edge.proto.io.prometheus.write.v2 import types_pb2 as v2

    symbols = [""]
    req = v2.Request()
    for labels in (first, second):
        refs = []
        for part in (text for label in labels for text in label):
            if part not in symbols:
                symbols.append(part)
            refs.append(symbols.index(part))
        series = req.timeseries.add(labels_refs=refs)
        series.samples.add(value=1, timestamp=1)
    req.symbols.extend(symbols)
    return req.SerializeToString()


@pytest.mark.parametrize(
    ("build", "content_type"), [(_rw1_ha_request, RW1_TYPE), (_rw2_ha_request, RW2_TYPE)], ids=["rw1", "rw2"]
)
def test_first_series_labels_for_the_ha_tracker(build, content_type: str) -> None:  # type: ignore[no-untyped-def]
    first = [("__name__", "up"), ("cluster", "ha-1"), ("__replica__", "replica-1")]
    second = [("__name__", "up"), ("cluster", "other"), ("__replica__", "replica-9")]
    counts = count_write_request(
        compress(build(first, second)), content_type=content_type, max_decompressed_bytes=LIMIT
    )
    assert counts.first_series_labels == tuple(first)
    assert counts.items_without_exemplars == 2


def test_no_series_no_labels() -> None:
    counts = count_write_request(
        compress(rw1_request(Shape(series=0))), content_type=RW1_TYPE, max_decompressed_bytes=LIMIT
    )
    assert counts.first_series_labels == ()


def test_rw2_label_refs_out_of_the_symbols_table_are_not_ha() -> None:
    from mimir_edge.proto.io.prometheus.write.v2 import types_pb2 as v2

    req = v2.Request(symbols=["", "cluster", "ha-1"])
    req.timeseries.add(labels_refs=[1, 2, 1, 7]).samples.add(value=1, timestamp=1)
    counts = count_write_request(compress(req.SerializeToString()), content_type=RW2_TYPE, max_decompressed_bytes=LIMIT)
    assert counts.first_series_labels == ()
    assert counts.float_samples == 1
