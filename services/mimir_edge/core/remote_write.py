"""Counting a Prometheus remote_write body: bytes and content headers in, counts out.

The body is snappy *block* format of `prometheus.WriteRequest` (Remote Write 1.0) or
`io.prometheus.write.v2.Request` (2.0). Counting parses the protobuf twice with the
counting-only views of `protos/mimir_edge/proto/counting.proto`: upb walks and validates every
nested message in C, and Python never builds one object per series.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import snappy
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from mimir_edge.core.errors import InvalidBody, PayloadTooLarge, UnsupportedMediaType
from mimir_edge.proto import counting_pb2

RW1_PROTO = "prometheus.WriteRequest"
RW2_PROTO = "io.prometheus.write.v2.Request"


class Protocol(enum.Enum):
    RW1 = RW1_PROTO
    RW2 = RW2_PROTO


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class WriteCounts:
    """What one remote_write request carries."""

    protocol: Protocol
    series: int
    float_samples: int
    histogram_samples: int
    exemplars: int
    metadata: int
    decompressed_bytes: int
    #: The first series' labels (RW2: resolved through the symbols table): where Mimir's HA
    #: tracker looks for the cluster and replica labels (`findHALabels`).
    first_series_labels: Labels = ()

    @property
    def items(self) -> int:
        """Every item the request carries: samples, histograms, exemplars and metadata."""
        return self.float_samples + self.histogram_samples + self.exemplars + self.metadata

    @property
    def items_without_exemplars(self) -> int:
        """Samples, histograms and metadata: what Mimir charges whatever the tenant's exemplar limit."""
        return self.float_samples + self.histogram_samples + self.metadata


def protocol_for(content_type: str | None) -> Protocol:
    """The protocol a Content-Type names; raises UnsupportedMediaType for anything else.

    As in the 2.0 spec: no `proto` parameter (or no header at all) means 1.0.
    """
    if not content_type:
        return Protocol.RW1
    media_type, *params = (part.strip() for part in content_type.split(";"))
    if media_type.lower() != "application/x-protobuf":
        raise UnsupportedMediaType(f"unsupported content type {content_type!r}")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "proto":
            proto = value.strip().strip('"')
            for protocol in Protocol:
                if proto == protocol.value:
                    return protocol
            raise UnsupportedMediaType(f"unsupported remote write message {proto!r}")
    return Protocol.RW1


def check_content_encoding(content_encoding: str | None) -> None:
    """Remote write is snappy; an absent header is taken as snappy, anything else is refused."""
    if content_encoding and content_encoding.strip().lower() != "snappy":
        raise UnsupportedMediaType(f"unsupported content encoding {content_encoding!r}")


def declared_length(body: bytes) -> int:
    """The decompressed length a snappy block declares in its leading varint."""
    result = 0
    for i in range(min(len(body), 5)):
        byte = body[i]
        result |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if result > 0xFFFFFFFF:
                break
            return result
    raise InvalidBody("not snappy block format: bad length header")


def decompress(body: bytes, max_decompressed_bytes: int) -> bytes:
    """Snappy-decode `body`, refusing before allocating when the declared size is over the bound."""
    size = declared_length(body)
    if size > max_decompressed_bytes:
        raise PayloadTooLarge(f"decompressed body of {size} bytes is over the limit of {max_decompressed_bytes} bytes")
    try:
        return snappy.uncompress(body)  # type: ignore[no-any-return]
    except Exception as exc:  # the snappy backends raise several unrelated types
        raise InvalidBody(f"not snappy block format: {exc}") from None


def count_write_request(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None = "snappy",
    max_decompressed_bytes: int,
) -> WriteCounts:
    """Count the series, samples, histograms, exemplars and metadata in a remote_write body."""
    protocol = protocol_for(content_type)
    check_content_encoding(content_encoding)
    raw = decompress(body, max_decompressed_bytes)
    try:
        if protocol is Protocol.RW1:
            return _count_rw1(raw)
        return _count_rw2(raw)
    except DecodeError as exc:
        raise InvalidBody(f"not a valid {protocol.value}: {exc}") from None


def _reject_wrong_wire_types(*messages: Message) -> None:
    """A known field with the wrong wire type lands in the unknown fields; Mimir (gogo) rejects
    such a request, so do we. Unknown field numbers are skipped, as Mimir skips them.

    Checked at the request level (and on RW2 series); not on RW1 series, whose unknown fields
    hold every label: listing them would cost more than the whole count.
    """
    for message in messages:
        for unknown in UnknownFieldSet(message):
            if unknown.field_number in message.DESCRIPTOR.fields_by_number:
                name = message.DESCRIPTOR.name
                raise InvalidBody(f"field {unknown.field_number} of {name} has wire type {unknown.wire_type}")


def _label_text(value: bytes) -> str:
    # Label values are compared, not shown: an invalid UTF-8 byte (which Mimir's validation
    # refuses anyway) only has to stay different from the valid values.
    return value.decode("utf-8", "replace")


def _first_series_labels_rw1(series: bytes) -> Labels:
    labels = counting_pb2.SeriesLabels.FromString(series).labels
    return tuple((_label_text(label.name), _label_text(label.value)) for label in labels)


def _first_series_labels_rw2(series: bytes, symbols: Sequence[bytes]) -> Labels:
    refs = counting_pb2.SeriesLabelRefs.FromString(series).labels_refs
    if len(refs) % 2 or any(ref >= len(symbols) for ref in refs):
        return ()  # Mimir refuses such a series when it unmarshals it; it is not HA to us.
    return tuple((_label_text(symbols[refs[i]]), _label_text(symbols[refs[i + 1]])) for i in range(0, len(refs), 2))


def _count_rw1(raw: bytes) -> WriteCounts:
    # The shape is counted and freed first, so only one parse's arena is alive at a time.
    shape = counting_pb2.WriteRequestShape.FromString(raw)
    series_count = len(shape.timeseries)
    first_labels = _first_series_labels_rw1(shape.timeseries[0]) if series_count else ()
    del shape
    merged = counting_pb2.WriteRequestMerged.FromString(raw)
    series = merged.timeseries
    _reject_wrong_wire_types(merged)
    return WriteCounts(
        protocol=Protocol.RW1,
        series=series_count,
        float_samples=len(series.samples),
        histogram_samples=len(series.histograms),
        exemplars=len(series.exemplars),
        metadata=len(merged.metadata),
        decompressed_bytes=len(raw),
        first_series_labels=first_labels,
    )


def _count_rw2(raw: bytes) -> WriteCounts:
    shape = counting_pb2.RequestV2Shape.FromString(raw)
    series_count = len(shape.timeseries)
    first_labels = _first_series_labels_rw2(shape.timeseries[0], shape.symbols) if series_count else ()
    del shape
    merged = counting_pb2.RequestV2Merged.FromString(raw)
    series = merged.timeseries
    _reject_wrong_wire_types(merged, series)
    return WriteCounts(
        protocol=Protocol.RW2,
        series=series_count,
        float_samples=len(series.samples),
        histogram_samples=len(series.histograms),
        exemplars=len(series.exemplars),
        metadata=len(series.metadata.type),
        decompressed_bytes=len(raw),
        first_series_labels=first_labels,
    )
