"""Counting a Prometheus remote_write body: bytes and content headers in, counts out.

The body is snappy *block* format of `prometheus.WriteRequest` (Remote Write 1.0) or
`io.prometheus.write.v2.Request` (2.0). Two counters give the same counts, the same first-series
labels (the HA tracker's) and refuse the same bodies (tests/unit/test_counting_differential.py
runs both on generated and mutated bodies):

* `native`: the compiled walker `_walker.c`, one pass over the bytes, no allocation per series,
  the first series' labels read in C from where the pass found it (2.0 metadata: a second pass,
  memory per distinct family and two bits per symbol); built by the install when a C compiler is
  there (tools/build_walker.py, hatch_build.py);
* `upb`: the plain twin, always present: parses the protobuf twice with the counting-only views of
  `protos/mimir_edge/proto/counting.proto`; upb walks and validates every nested message in C, and
  Python never builds one object per series, except to read the series that carry 2.0 metadata.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cramjam
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from mimir_edge.core.errors import InvalidBody, PayloadTooLarge, UnsupportedMediaType
from mimir_edge.proto import counting_pb2

try:
    from mimir_edge.core import _walker  # type: ignore[attr-defined]
except ImportError:  # not compiled: no C compiler at install time
    _walker = None

RW1_PROTO = "prometheus.WriteRequest"
RW2_PROTO = "io.prometheus.write.v2.Request"


class Protocol(enum.Enum):
    RW1 = RW1_PROTO
    RW2 = RW2_PROTO


Labels = tuple[tuple[str, str], ...]


class Counter(enum.StrEnum):
    """Which implementation counts a decompressed body."""

    NATIVE = "native"
    UPB = "upb"


def select_counter(preference: str) -> Counter:
    """`auto` (the compiled walker when it was built, else upb), `native` or `upb`.

    Raises ValueError for `native` when the walker was not built, and for any other word.
    """
    if preference == "auto":
        return Counter.NATIVE if _walker is not None else Counter.UPB
    if preference == Counter.NATIVE and _walker is None:
        raise ValueError("the native counter was not built (no C compiler at install time); use auto or upb")
    try:
        return Counter(preference)
    except ValueError:
        raise ValueError(f"unknown counter {preference!r}: auto, native or upb") from None


DEFAULT_COUNTER = select_counter("auto")


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


#: Bodies up to this size decompress into one buffer kept per thread: no allocation and no second
#: copy per request (python-snappy's `uncompress` copies cramjam's result into new bytes).
#: Larger ones get a buffer of their own, so a rare huge body is not kept alive for good.
REUSED_BUFFER_BYTES = 8 << 20

_buffers = threading.local()


def _buffer(size: int) -> bytearray:
    if size > REUSED_BUFFER_BYTES:
        return bytearray(size)
    buffer: bytearray | None = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _buffers.buffer = bytearray(max(size, 64 << 10))
    return buffer


def _check_size(body: bytes, max_decompressed_bytes: int) -> int:
    size = declared_length(body)
    if size > max_decompressed_bytes:
        raise PayloadTooLarge(f"decompressed body of {size} bytes is over the limit of {max_decompressed_bytes} bytes")
    return size


def decompress(body: bytes, max_decompressed_bytes: int) -> bytes:
    """Snappy-decode `body`, refusing before allocating when the declared size is over the bound."""
    _check_size(body, max_decompressed_bytes)
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise InvalidBody(f"not snappy block format: {exc}") from None


def decompress_into_buffer(body: bytes, max_decompressed_bytes: int) -> memoryview:
    """Like `decompress`, into this thread's reused buffer: the view is valid until the thread's
    next call, so the caller counts it and lets it go."""
    size = _check_size(body, max_decompressed_bytes)
    buffer = _buffer(size)
    try:
        written = cramjam.snappy.decompress_raw_into(body, buffer)
    except cramjam.DecompressionError as exc:
        raise InvalidBody(f"not snappy block format: {exc}") from None
    return memoryview(buffer)[:written]


def count_write_request(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None = "snappy",
    max_decompressed_bytes: int,
    counter: Counter = DEFAULT_COUNTER,
) -> WriteCounts:
    """Count the series, samples, histograms, exemplars and metadata in a remote_write body."""
    protocol = protocol_for(content_type)
    check_content_encoding(content_encoding)
    raw = decompress_into_buffer(body, max_decompressed_bytes)
    try:
        return count_decompressed(raw, protocol, counter)
    finally:
        raw.release()


def count_decompressed(raw: bytes | memoryview, protocol: Protocol, counter: Counter = DEFAULT_COUNTER) -> WriteCounts:
    """Count a decompressed body with one implementation; raises InvalidBody for a malformed one."""
    if counter is Counter.NATIVE:
        return _count_native(raw, protocol)
    try:
        if protocol is Protocol.RW1:
            return _count_rw1(raw)
        return _count_rw2(raw)
    except DecodeError as exc:
        raise InvalidBody(f"not a valid {protocol.value}: {exc}") from None


def _count_native(raw: bytes | memoryview, protocol: Protocol) -> WriteCounts:
    if _walker is None:
        raise RuntimeError("the native counter was not built")
    try:
        series, floats, histograms, exemplars, metadata, labels = _walker.count(
            raw, 1 if protocol is Protocol.RW1 else 2
        )
    except ValueError as exc:
        raise InvalidBody(f"not a valid {protocol.value}: {exc}") from None
    return WriteCounts(protocol, series, floats, histograms, exemplars, metadata, len(raw), labels)


def first_series_labels(raw: bytes | memoryview, protocol: Protocol) -> Labels:
    """The first series' labels of a body already known to be well formed (RW2: resolved through
    the symbols table), with the counting views: what the upb counter computes, and the reference
    for the walker's own labels (which `_count_native` returns without parsing again)."""
    if protocol is Protocol.RW1:
        shape = counting_pb2.WriteRequestShape.FromString(raw)
        return _first_series_labels_rw1(shape.timeseries[0]) if shape.timeseries else ()
    v2 = counting_pb2.RequestV2Shape.FromString(raw)
    return _first_series_labels_rw2(v2.timeseries[0], v2.symbols) if v2.timeseries else ()


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
    try:
        labels = counting_pb2.SeriesLabels.FromString(series).labels
    except DecodeError:
        return ()  # labels are Mimir's to validate (it refuses this series); not HA to us
    return tuple((_label_text(label.name), _label_text(label.value)) for label in labels)


def _first_series_labels_rw2(series: bytes, symbols: Sequence[bytes]) -> Labels:
    try:
        refs = counting_pb2.SeriesLabelRefs.FromString(series).labels_refs
    except DecodeError:
        return ()
    if len(refs) % 2 or any(ref >= len(symbols) for ref in refs):
        return ()  # Mimir refuses such a series when it unmarshals it; it is not HA to us.
    return tuple((_label_text(symbols[refs[i]]), _label_text(symbols[refs[i + 1]])) for i in range(0, len(refs), 2))


def _count_rw1(raw: bytes | memoryview) -> WriteCounts:
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


def _count_rw2(raw: bytes | memoryview) -> WriteCounts:
    shape = counting_pb2.RequestV2Shape.FromString(raw)
    series_count = len(shape.timeseries)
    first_labels = _first_series_labels_rw2(shape.timeseries[0], shape.symbols) if series_count else ()
    del shape
    merged = counting_pb2.RequestV2Merged.FromString(raw)
    series = merged.timeseries
    _reject_wrong_wire_types(merged, series, series.metadata)
    counts = WriteCounts(
        protocol=Protocol.RW2,
        series=series_count,
        float_samples=len(series.samples),
        histogram_samples=len(series.histograms),
        exemplars=len(series.exemplars),
        metadata=0,
        decompressed_bytes=len(raw),
        first_series_labels=first_labels,
    )
    if not series.HasField("metadata"):
        return counts
    del merged, series
    return dataclasses.replace(counts, metadata=_rw2_metadata_families(raw))


#: The suffixes Mimir's `normalizeMetricName` (pkg/mimirpb/timeseries.go) cuts from a series name
#: to name its metric family, the first that matches, by metadata type: histogram (3), gauge
#: histogram (4), summary (5). Other types keep the name (`_total` and `_info` stay).
_FAMILY_SUFFIXES = {3: (b"_bucket", b"_count", b"_sum"), 4: (b"_bucket", b"_gcount", b"_gsum"), 5: (b"_count", b"_sum")}


def _metric_family(name: bytes, metric_type: int) -> bytes:
    for suffix in _FAMILY_SUFFIXES.get(metric_type, ()):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _rw2_metadata_families(raw: bytes | memoryview) -> int:
    """The metadata items Mimir charges for a 2.0 request: one per metric family.

    Mimir reads each series' Metadata into a set keyed by family (`MetricMetadataUnmarshalRW2`
    into a `dedupingMetadataSet`, pkg/mimirpb): the family is the series' `__name__` value
    normalized for the Metadata's type, and a Metadata counts when its type is set or its help
    or unit is not empty (symbol 0 is always empty); the first of each family is kept. The walker
    (`_walker.c`) counts alike.

    Here the family is named by the series' last `__name__` label, its label references read as
    one list; Mimir names it by the `__name__` read before the Metadata in wire order. The two
    differ only for a series that puts its Metadata before its `__name__` label, or repeats
    `__name__` after it: then the edge may charge one metadata item more or less than Mimir. No
    sender writes a series so. Requests Mimir refuses (400, nothing charged) are counted by the
    same rule: label references unpacked, an odd number in a packed run, or outside the symbols
    table (that series names no family); symbols after the series; a non-empty first symbol; help
    or unit references outside the table (read as empty).
    """
    view = counting_pb2.RequestV2Metadata.FromString(raw)
    symbols = view.symbols  # read by reference, never copied: a table can hold millions
    count = len(symbols)
    # (name reference, metadata type) of the Metadata that count: each resolved once at the end.
    named: set[tuple[int, int]] = set()
    names: dict[int, bool] = {}  # label reference: is it `__name__`
    for series in view.timeseries:
        metadata = series.metadata
        if not metadata:
            continue
        refs = series.labels_refs[:]
        name_ref = 0
        if len(refs) % 2 == 0 and (not refs or max(refs) < count):
            for i in range(len(refs) - 2, -1, -2):  # the last __name__ label wins
                label = refs[i]
                is_name = names.get(label)
                if is_name is None:
                    is_name = names[label] = label != 0 and symbols[label] == b"__name__"
                if is_name:
                    name_ref = refs[i + 1]
                    break
        if not name_ref:
            continue
        for entry in metadata:
            help_ref, unit_ref = entry.help_ref, entry.unit_ref
            if (
                entry.type
                or (0 < help_ref < count and symbols[help_ref])
                or (0 < unit_ref < count and symbols[unit_ref])
            ):
                named.add((name_ref, entry.type if entry.type in _FAMILY_SUFFIXES else 0))
    return len({family for ref, kind in named if (family := _metric_family(symbols[ref], kind))})
