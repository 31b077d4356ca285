"""Counting an OTLP metrics write (`POST /otlp/v1/metrics`) as Mimir charges it: bytes and content
headers in, counts out. Pure: no I/O.

The rules follow Mimir 3.1 (`pkg/distributor/otel.go`, its `otlpappender.MimirAppender`, and the
Prometheus OTLP translator it vendors, `otlptranslator/prometheusremotewrite`): each rule below is a
small function naming the Mimir function it mirrors. docs/parity.md lists what is not mirrored.

Protobuf bodies are counted with the views of `protos/mimir_edge/proto/otlp_counting.proto`: a
shape pass (points as slices, counted not decoded) and a pass merging every metric of a resource
(one list of timestamps, exemplars and quantiles per kind and resource), both in C. Python touches
one object per metric (and per classic histogram point, for its bucket and bound counts), never one
per gauge, sum, summary or exponential histogram point, nor per attribute; target_info's earliest
and latest timestamps are found over their packed bytes when a resource's points share one time.
Only a resource mixing metrics of one kind whose exemplars (or quantiles) are charged differently
needs a third pass, metric by metric. JSON bodies are read into the full message as Mimir's pdata
reads them (`otlp_json`) and counted the same way.

Two per-tenant settings change what a request costs, and the RLS does not know a tenant's limits
before the one atomic Lua call that reads them (`lua/token_bucket.lua`): native histograms with
custom buckets (`otel_convert_histograms_to_nhcb`) and native delta ingestion
(`otel_native_delta_ingestion`). So the request is counted under all four combinations
(`OtlpCounts`) and the Lua script picks the one the tenant's limits name, in the same call that
charges it: exact from the first request, and after any change of the tenant's limits.
"""

from __future__ import annotations

import array
import enum
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cramjam
from google.protobuf.internal.containers import RepeatedScalarFieldContainer
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet
from google.rpc import status_pb2

from mimir_edge.core.errors import InvalidBody, PayloadTooLarge, UnsupportedMediaType
from mimir_edge.core.otlp_json import parse_export_request
from mimir_edge.proto import otlp_counting_pb2 as views

#: Mimir's `newOTLPParser` accepts exactly these Content-Type values (a string switch).
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: ... and exactly these Content-Encoding values ("" = none).
ENCODINGS = ("", "gzip", "lz4", "zstd")

#: AggregationTemporality values (opentelemetry-proto metrics.proto).
DELTA = 1
CUMULATIVE = 2

#: The resource attributes that become `job` and `instance` (OTel semantic conventions).
SERVICE_NAME = b"service.name"
SERVICE_NAMESPACE = b"service.namespace"
SERVICE_INSTANCE_ID = b"service.instance.id"
IDENTIFYING_ATTRIBUTES = frozenset({SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_INSTANCE_ID})

#: `addResourceTargetInfo`: one target_info sample every LookbackDelta / 2; Mimir leaves
#: LookbackDelta unset, so Prometheus' default 5 min applies.
TARGET_INFO_INTERVAL_NS = 150 * 1_000_000_000
_NS_PER_MS = 1_000_000
_MAX_UINT64 = (1 << 64) - 1

#: Cross-resource de-duplication of target_info samples keeps the timestamps of a resource up to
#: this many samples; beyond, its samples are added without de-duplication (see docs/parity.md).
_TARGET_INFO_DEDUPE_MAX = 4096

Labels = tuple[tuple[str, str], ...]


class OtlpFormat(enum.StrEnum):
    """The body's encoding; answers are written in the same one (Mimir's `writeOTLPResponse`)."""

    PROTOBUF = PROTOBUF
    JSON = JSON


@dataclass(frozen=True, slots=True)
class OtlpCounts:
    """What one OTLP request costs Mimir, in plain integers (a C counter can fill the same fields).

    `*_items` are samples + native histograms + metadata entries, exemplars apart, under the four
    combinations of the tenant's `otel_convert_histograms_to_nhcb` (nhcb) and
    `otel_native_delta_ingestion` (delta); `base_items` is Mimir's default (both off). Exemplars
    depend only on delta (a classic or custom-buckets histogram keeps every exemplar).
    """

    format: OtlpFormat
    base_items: int
    nhcb_items: int
    delta_items: int
    delta_nhcb_items: int
    exemplars: int
    delta_exemplars: int
    #: Every data point in the request, charged or not (for the headers and the logs).
    data_points: int
    resources: int
    #: Samples of the target_info series (identical whatever the settings).
    target_info_samples: int
    decompressed_bytes: int
    #: Labels of the first series Mimir converts under its defaults, as far as they can carry
    #: the HA labels: `job`, `instance` and the first point's string, int and bool attributes.
    first_series_labels: Labels = ()

    def pick(self, *, nhcb: bool, delta: bool) -> tuple[int, int]:
        """(items without exemplars, exemplars) under the tenant's two settings."""
        if delta:
            return (self.delta_nhcb_items if nhcb else self.delta_items), self.delta_exemplars
        return (self.nhcb_items if nhcb else self.base_items), self.exemplars

    @property
    def items_without_exemplars(self) -> int:
        """Under Mimir's defaults (as WriteCounts.items_without_exemplars)."""
        return self.base_items

    @property
    def items(self) -> int:
        """Under Mimir's defaults, exemplars included (as WriteCounts.items)."""
        return self.base_items + self.exemplars

    @property
    def series(self) -> int:
        """Data points: what the `series` header and metadata carry for an OTLP write."""
        return self.data_points


# --- Content headers and decompression (Mimir's `newOTLPParser`) ---


def request_format(content_type: str | None) -> OtlpFormat:
    """Mimir's `newOTLPParser`: exactly application/x-protobuf or application/json, else 415."""
    if content_type == PROTOBUF:
        return OtlpFormat.PROTOBUF
    if content_type == JSON:
        return OtlpFormat.JSON
    raise UnsupportedMediaType(f"unsupported content type: {content_type or ''}, supported: [{JSON}, {PROTOBUF}]")


def check_content_encoding(content_encoding: str | None) -> str:
    """Mimir's `newOTLPParser`: gzip, lz4, zstd or none, compared exactly, else 415."""
    encoding = content_encoding or ""
    if encoding not in ENCODINGS:
        raise UnsupportedMediaType(
            f'unsupported compression: {encoding}. Only "gzip", "lz4", "zstd", or no compression supported'
        )
    return encoding


def too_large(limit: int, size: int | None = None, *, compressed: bool = False) -> PayloadTooLarge:
    """Mimir's `distributorMaxOTLPRequestSizeErr` message, with the edge's own limit."""
    of = f" of {size} bytes ({'compressed' if compressed else 'uncompressed'})" if size is not None else ""
    return PayloadTooLarge(
        f"the incoming OTLP request has been rejected because its message size{of} is larger than the "
        f"allowed limit of {limit} bytes (err-mimir-distributor-max-otlp-request-size). To adjust the related "
        "limit, configure -distributor.max-otlp-request-size, or contact your service administrator."
    )


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """The decompressed body, refused (413) as soon as it would pass `max_bytes`: at most
    `max_bytes` + 1 bytes of output are ever allocated, whatever the body declares."""
    if encoding == "":
        if len(body) > max_bytes:
            raise too_large(max_bytes, len(body))
        return body
    return _decompress_into(body, encoding, max_bytes)


_CODECS = {"gzip": cramjam.gzip, "zstd": cramjam.zstd, "lz4": cramjam.lz4}
#: Deflate's largest expansion (a 258-byte match per 2-bit code, about 1032:1): a gzip body's
#: declared size beyond it is a lie, so it never sizes a buffer.
_DEFLATE_MAX_RATIO = 1032


def _decompress_into(body: bytes, encoding: str, max_bytes: int) -> bytes:
    # cramjam writes into a buffer we allocate and stops with "failed to write whole buffer" when
    # it is full: the output can never exceed it. The first buffer is sized from the body, not
    # max_bytes (zero-filling tens of MiB would cost more than counting); one that fills up is
    # retried 8x larger, so a body is decompressed at most ~1.15x over, and at most max_bytes + 1
    # bytes are allocated. cramjam's gzip reads concatenated members, as Go's gzip.Reader does,
    # and inflates ~1.5x faster than the zlib module.
    codec = _CODECS[encoding]
    size = min(max_bytes + 1, max(64 * 1024, _size_hint(body, encoding)))
    while True:
        out = bytearray(size)
        try:
            written = codec.decompress_into(body, out)
        except cramjam.DecompressionError as exc:
            if "failed to write whole buffer" not in str(exc):
                raise InvalidBody(f"{encoding}: {exc}") from None
            if size > max_bytes:
                raise too_large(max_bytes) from None
            del out  # before the larger one: never two buffers at once
            size = min(max_bytes + 1, 8 * size)
            continue
        except Exception as exc:  # cramjam raises OSError and others for corrupt input
            raise InvalidBody(f"{encoding}: {exc}") from None
        if written > max_bytes:
            raise too_large(max_bytes)
        del out[written:]
        return bytes(out)


def _size_hint(body: bytes, encoding: str) -> int:
    """A first guess of the decompressed size, plus one byte so an exact guess needs no retry:
    a gzip member's trailer states its size (mod 2**32; exact for the usual single member);
    otherwise protobuf compresses ~5-30x."""
    if encoding == "gzip" and len(body) >= 18:  # the smallest gzip member
        return min(int.from_bytes(body[-4:], "little"), _DEFLATE_MAX_RATIO * len(body)) + 1
    return 32 * len(body)


# --- Mimir's conversion rules (the vendored Prometheus translator, Mimir 3.1) ---


def temporality_accepted(temporality: int, *, native_delta: bool) -> bool:
    """`isValidAggregationTemporality` (metrics_to_prw.go): cumulative, or delta when the tenant
    ingests deltas natively; unspecified never. A refused metric converts to nothing."""
    return temporality == CUMULATIVE or (native_delta and temporality == DELTA)


def gauge_samples(points: int) -> int:
    """`addGaugeNumberDataPoints`: one float sample per point (a non-monotonic sum too)."""
    return points


def sum_samples(points: int) -> int:
    """`addSumNumberDataPoints`: one float sample per point."""
    return points


def classic_histogram_point_samples(bucket_counts: int, explicit_bounds: int, has_sum: bool) -> int:
    """`addHistogramDataPoints`: a `_bucket` per bound that has a count, `le="+Inf"`, `_count`,
    and `_sum` only when the point has one."""
    return min(bucket_counts, explicit_bounds) + 1 + 1 + (1 if has_sum else 0)


def nhcb_histogram_samples(points: int) -> int:
    """`addCustomBucketsHistogramDataPoints`: one native histogram (schema -53) per point."""
    return points


def exponential_histogram_samples(points: int) -> int:
    """`addExponentialHistogramDataPoints`: one native histogram per point."""
    return points


def summary_samples(points: int, quantiles: int) -> int:
    """`addSummaryDataPoints`: `_sum` and `_count` per point (no HasSum check) and one per quantile."""
    return 2 * points + quantiles


def exemplars_kept(kind: str, *, monotonic: bool) -> bool:
    """Whose exemplars the translator keeps: monotonic sums and (classic, custom-bucket,
    exponential) histograms; gauges, non-monotonic sums (`addGaugeNumberDataPoints`) and
    summaries drop theirs."""
    return kind in ("histogram", "exponential_histogram") or (kind == "sum" and monotonic)


def metadata_entries(families: Iterable[tuple[bytes, tuple[bytes, bytes, str]]]) -> int:
    """`MimirAppender.appendMetadata`: an entry when a family is first seen in the request or its
    (help, unit, type) differs from the last one stored for it."""
    last: dict[bytes, tuple[bytes, bytes, str]] = {}
    entries = 0
    for family, meta in families:
        if last.get(family) != meta:
            last[family] = meta
            entries += 1
    return entries


def _metadata(families: Sequence[tuple[bytes, Message, str, bool]]) -> tuple[int, int]:
    """(entries under Mimir's defaults, entries with native delta ingestion): a delta metric's
    family counts only in the second. Help and unit are read once, only when a name repeats."""
    names = [f[0] for f in families]
    base_names = [f[0] for f in families if not f[3]]
    distinct = set(names)
    if len(distinct) == len(names):
        return len(base_names), len(names)  # every family seen once: one entry each
    metas = [(name, ms.description, ms.unit, ptype) for name, ms, ptype, _ in families]
    if len(set(metas)) == len(distinct):
        # Each family described one way throughout (a batch of many resources): one entry each.
        return len(set(base_names)), len(distinct)
    base = metadata_entries((m[0], m[1:]) for m, f in zip(metas, families, strict=True) if not f[3])
    return base, metadata_entries((m[0], m[1:]) for m in metas)


def target_info_timestamps_ms(earliest_ns: int, latest_ns: int) -> tuple[int, int, int, int]:
    """`addResourceTargetInfo`'s samples as a run plus a last one: (earliest ns, step ns, samples
    in the run, last ms); the run's k-th sample is at (earliest + k * step) // 1 ms."""
    earliest, latest = _as_int64(earliest_ns), _as_int64(latest_ns)
    # The loop `for t := earliest; t.Before(latest); t += step`, as an exact integer ceiling.
    run = -((earliest - latest) // TARGET_INFO_INTERVAL_NS) if latest > earliest else 0
    return earliest, TARGET_INFO_INTERVAL_NS, run, latest // _NS_PER_MS


def target_info_samples(earliest_ns: int, latest_ns: int) -> int:
    """`addResourceTargetInfo`: a sample at the earliest point's time, then every 2.5 min while
    before the latest, and one at the latest; samples in the same millisecond count once."""
    earliest, step, run, last_ms = target_info_timestamps_ms(earliest_ns, latest_ns)
    if run == 0:
        return 1
    last_of_run = (earliest + (run - 1) * step) // _NS_PER_MS
    return run + (0 if last_of_run == last_ms else 1)


def target_info_labels(attributes: Sequence[views.KeyValueBytes]) -> tuple[object, ...] | None:
    """`addResourceTargetInfo`: None when no target_info is emitted (no attribute besides the
    identifying ones, or neither `job` nor `instance`); else the identity of its label set."""
    values = {kv.key: kv.value for kv in attributes}
    if not any(key not in IDENTIFYING_ATTRIBUTES for key in values):
        return None
    job, instance = _job_instance(values)
    if not job and not instance:
        return None
    rest = tuple(
        sorted(
            (kv.key, kv.value.SerializeToString(deterministic=True))
            for kv in attributes
            if kv.key not in IDENTIFYING_ATTRIBUTES
        )
    )
    return (job, instance, rest)


def _job_instance(values: dict[bytes, views.AnyValueBytes]) -> tuple[str, str]:
    """`createAttributes`: job = [service.namespace/]service.name, instance = service.instance.id."""
    job = ""
    if SERVICE_NAME in values:
        job = _as_string(values[SERVICE_NAME])
        if SERVICE_NAMESPACE in values:
            job = f"{_as_string(values[SERVICE_NAMESPACE])}/{job}"
    instance = _as_string(values[SERVICE_INSTANCE_ID]) if SERVICE_INSTANCE_ID in values else ""
    return job, instance


def _as_string(value: views.AnyValueBytes) -> str:
    # pcommon.Value.AsString for the kinds an identifying attribute has in practice; any other
    # kind is a non-empty string in Go too, which is all the callers need.
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _text(value.string_value)
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind is None or (kind == "bytes_value" and not value.bytes_value):
        return ""
    return f"<{kind}>"


def _text(value: bytes) -> str:
    # Compared, not shown: invalid UTF-8 (which Mimir's validation refuses later) only has to stay
    # different from the valid values.
    return value.decode("utf-8", "replace")


def _as_int64(ns: int) -> int:
    # pcommon.Timestamp.AsTime: time.Unix(0, int64(ts)).
    return ns - (1 << 64) if ns >= 1 << 63 else ns


# --- Counting ---


def count_otlp_request(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    max_decompressed_bytes: int,
) -> OtlpCounts:
    """Count an OTLP ExportMetricsServiceRequest body, protobuf or JSON, compressed or not."""
    fmt = request_format(content_type)
    encoding = check_content_encoding(content_encoding)
    raw = decompress(body, encoding, max_decompressed_bytes)
    if fmt is OtlpFormat.JSON:
        raw = _json_to_protobuf(raw)
    try:
        return _count(raw, fmt)
    except DecodeError as exc:
        raise InvalidBody(f"not a valid OTLP ExportMetricsServiceRequest: {exc}") from None


def _json_to_protobuf(raw: bytes) -> bytes:
    """OTLP/JSON, read as Mimir's pdata reads it (`otlp_json`), in the protobuf encoding."""
    return bytes(parse_export_request(raw).SerializeToString())


def _reject_wrong_wire_types(message: Message) -> None:
    # As in remote_write.py: a known field with the wrong wire type lands in the unknown fields;
    # Mimir's decoder refuses the request, so do we. Checked on the request only.
    for unknown in UnknownFieldSet(message):
        if unknown.field_number in message.DESCRIPTOR.fields_by_number:
            raise InvalidBody(
                f"field {unknown.field_number} of {message.DESCRIPTOR.name} has wire type {unknown.wire_type}"
            )


@dataclass(slots=True)
class _Totals:
    """Running totals of one variant pair (nhcb off/on) for one delta setting."""

    samples: int = 0
    nhcb_samples: int = 0
    exemplars: int = 0


_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
#: The kinds whose points carry what is charged apart: exemplars, or a summary's quantiles.
_EXTRA_KINDS = ("sum", "histogram", "exponential_histogram", "summary")


def _count(raw: bytes, fmt: OtlpFormat) -> OtlpCounts:
    shape = views.RequestShape.FromString(raw)
    totals = views.RequestTotals.FromString(raw)
    _reject_wrong_wire_types(totals)
    if len(shape.resource_metrics) != len(totals.resource_metrics):
        raise InvalidBody("inconsistent resource_metrics")
    cumulative, delta = _Totals(), _Totals()
    # (family name, the metric, its Prometheus type, delta?): help and unit are read only for a
    # name seen twice (_metadata), which spares two reads per metric in the common case.
    families: list[tuple[bytes, Message, str, bool]] = []
    points_total = 0
    first_labels: Labels | None = None
    target_info: dict[tuple[object, ...], set[int]] = {}
    target_info_total = 0
    per_metric: list[views.RequestMerged] = []  # pass 3, parsed at most once, when needed
    # Samples summed in locals, not in _Totals, in the per-metric loop: (cumulative, delta) x
    # (classic histograms, custom buckets).
    cum_samples = cum_nhcb = delta_samples = delta_nhcb = 0
    for r, (rs, rt) in enumerate(zip(shape.resource_metrics, totals.resource_metrics, strict=True)):
        resource_points = 0
        resource_first: tuple[str, bytes] | None = None
        merged = rt.scope_metrics.metrics
        # Only kinds with exemplars (or quantiles) somewhere in the resource need their metrics
        # listed: (kind, delta? or None when dropped, monotonic, scope index, metric index).
        extra_kinds = {
            k for k in _EXTRA_KINDS if merged.HasField(k) and _extra_count(getattr(merged, k).data_points, k)
        }
        extras: list[tuple[str, bool | None, bool, int, int]] = []
        for s_index, ss in enumerate(rs.scope_metrics):
            for m_index, ms in enumerate(ss.metrics):
                # HasField, not WhichOneof: ~20x cheaper per call in upb, and this loop runs per metric.
                if ms.HasField("sum"):
                    kind, data = "sum", ms.sum
                elif ms.HasField("gauge"):
                    kind, data = "gauge", ms.gauge
                elif ms.HasField("histogram"):
                    kind, data = "histogram", ms.histogram
                elif ms.HasField("exponential_histogram"):
                    kind, data = "exponential_histogram", ms.exponential_histogram
                elif ms.HasField("summary"):
                    kind, data = "summary", ms.summary
                else:
                    continue  # no data: Mimir drops it ("unsupported metric type")
                points = len(data.data_points)
                if points == 0:
                    continue  # "empty data points": dropped
                resource_points += points
                name = ms.name
                if kind == "gauge" or kind == "summary":
                    temporality, monotonic, dropped = None, False, not name
                else:
                    temporality = data.aggregation_temporality
                    monotonic = kind == "sum" and data.is_monotonic
                    # An empty name, or a temporality refused whatever the tenant's settings.
                    dropped = not name or not temporality_accepted(temporality, native_delta=True)
                is_delta = temporality == DELTA
                if kind in extra_kinds:
                    extras.append((kind, None if dropped else is_delta, monotonic, s_index, m_index))
                if dropped:
                    continue
                samples, nhcb = _samples(data, kind, points, monotonic)
                delta_samples += samples
                delta_nhcb += nhcb
                if not is_delta:
                    cum_samples += samples
                    cum_nhcb += nhcb
                families.append((name, ms, _PROMETHEUS_TYPES[kind, monotonic], is_delta))
                if resource_first is None and not is_delta:
                    resource_first = (kind, _first_point(data, kind))
        if extras:
            _charge_extras(extras, merged, raw, r, per_metric, cumulative, delta)
        earliest, latest, stamped = _MAX_UINT64, 0, 0
        for kind in _KINDS:
            if not merged.HasField(kind):
                continue
            times = getattr(merged, kind).data_points.time_unix_nano
            if times:
                stamped += len(times)
                first, last = _time_range(times)
                earliest, latest = min(earliest, first), max(latest, last)
        if stamped < resource_points:
            earliest = 0  # a point without time_unix_nano has time 0
        points_total += resource_points
        if resource_points == 0:
            continue  # no data point: no target_info
        attributes = rt.resource.attributes
        if first_labels is None and resource_first is not None:
            first_labels = _first_series_labels(attributes, resource_first[0], resource_first[1])
        identity = target_info_labels(attributes)
        if identity is None:
            continue
        target_info_total += _add_target_info(target_info, identity, earliest, latest)
    # target_info's metadata: one entry when any target_info series is emitted.
    info_metadata = 1 if target_info_total else 0
    base_meta, delta_meta = (entries + info_metadata for entries in _metadata(families))
    cumulative.samples += cum_samples
    cumulative.nhcb_samples += cum_nhcb
    delta.samples += delta_samples
    delta.nhcb_samples += delta_nhcb
    common = target_info_total
    return OtlpCounts(
        format=fmt,
        base_items=common + cumulative.samples + base_meta,
        nhcb_items=common + cumulative.nhcb_samples + base_meta,
        delta_items=common + delta.samples + delta_meta,
        delta_nhcb_items=common + delta.nhcb_samples + delta_meta,
        exemplars=cumulative.exemplars,
        delta_exemplars=delta.exemplars,
        data_points=points_total,
        resources=len(shape.resource_metrics),
        target_info_samples=target_info_total,
        decompressed_bytes=len(raw),
        first_series_labels=first_labels or (),
    )


#: Up to this many timestamps, reading them as Python integers costs less than re-encoding them.
_FEW_TIMESTAMPS = 16


def _time_range(times: RepeatedScalarFieldContainer[int]) -> tuple[int, int]:
    """(earliest, latest) of a non-empty list of uint64 timestamps. Re-encoded packed (one copy in
    C), they are compared as bytes with the first one repeated, since a batch's points usually
    share a time; only otherwise is one Python integer made per point."""
    count = len(times)
    if count <= _FEW_TIMESTAMPS:
        return min(times), max(times)
    packed = views.Timestamps(time_unix_nano=times).SerializeToString()[-8 * count :]
    first = packed[:8]
    if packed == first * count:
        value = int.from_bytes(first, "little")
        return value, value
    values = array.array("Q", packed)
    if sys.byteorder == "big":
        values.byteswap()  # the wire's fixed64 is little-endian
    return min(values), max(values)


def _charge_extras(
    extras: Sequence[tuple[str, bool | None, bool, int, int]],
    merged: Message,
    raw: bytes,
    resource: int,
    per_metric: list[views.RequestMerged],
    cumulative: _Totals,
    delta: _Totals,
) -> None:
    """A resource's exemplars (sums, histograms) and summary quantiles. Pass 2 has each kind's
    total for the resource; when the metrics of a kind are all charged alike (the usual case),
    the total goes to them. Otherwise each metric's own count is read from pass 3."""
    for kind in _EXTRA_KINDS:
        metrics = [e for e in extras if e[0] == kind]
        if not metrics:
            continue
        total = _extra_count(getattr(merged, kind).data_points, kind)
        if total == 0:
            continue
        classes = {(is_delta, monotonic) for _, is_delta, monotonic, _, _ in metrics}
        if len(classes) == 1:
            ((is_delta, monotonic),) = classes
            _charge_extra(kind, is_delta, monotonic, total, cumulative, delta)
            continue
        if not per_metric:
            per_metric.append(views.RequestMerged.FromString(raw))
        scopes = per_metric[0].resource_metrics[resource].scope_metrics
        for _, is_delta, monotonic, s_index, m_index in metrics:
            points = getattr(scopes[s_index].metrics[m_index], kind).data_points
            _charge_extra(kind, is_delta, monotonic, _extra_count(points, kind), cumulative, delta)


def _extra_count(merged_points: Message, kind: str) -> int:
    if kind == "summary":
        return len(merged_points.quantile_values)
    return len(merged_points.exemplars)


def _charge_extra(
    kind: str, is_delta: bool | None, monotonic: bool, n: int, cumulative: _Totals, delta: _Totals
) -> None:
    if is_delta is None:
        return  # a dropped metric's
    targets = (delta,) if is_delta else (cumulative, delta)
    if kind == "summary":
        for sums in targets:  # one sample per quantile
            sums.samples += n
            sums.nhcb_samples += n
    elif exemplars_kept(kind, monotonic=monotonic):
        for sums in targets:
            sums.exemplars += n


def _samples(data: Message, kind: str, points: int, monotonic: bool) -> tuple[int, int]:
    """(samples with classic histograms, samples with custom-bucket native histograms); a
    summary's quantiles are added by _charge_extras."""
    if kind == "histogram":
        classic = sum(
            classic_histogram_point_samples(len(p.bucket_counts), len(p.explicit_bounds), p.HasField("sum"))
            for p in data.data_points
        )
        return classic, nhcb_histogram_samples(points)
    if kind == "summary":
        n = summary_samples(points, 0)
    elif kind == "exponential_histogram":
        n = exponential_histogram_samples(points)
    elif kind == "sum" and monotonic:
        n = sum_samples(points)
    else:
        n = gauge_samples(points)
    return n, n


def _prometheus_type(kind: str, monotonic: bool) -> str:
    # otelMetricTypeToPromMetricType: what distinguishes metadata entries of one family.
    if kind == "sum":
        return "counter" if monotonic else "gauge"
    if kind == "exponential_histogram":
        return "histogram"
    return kind


#: _prometheus_type for every (kind, monotonic), looked up once per metric.
_PROMETHEUS_TYPES = {
    (kind, monotonic): _prometheus_type(kind, monotonic) for kind in _KINDS for monotonic in (False, True)
}


def _first_point(data: Message, kind: str) -> bytes:
    first = data.data_points[0]
    # Classic histogram points are parsed (for their bucket counts); the others are slices.
    return bytes(first.SerializeToString()) if kind == "histogram" else bytes(first)


_ATTRIBUTE_VIEWS: dict[str, type[Message]] = {
    "gauge": views.PointAttributes7,
    "sum": views.PointAttributes7,
    "summary": views.PointAttributes7,
    "histogram": views.PointAttributes9,
    "exponential_histogram": views.PointAttributes1,
}


def _first_series_labels(resource: Sequence[views.KeyValueBytes], kind: str, point: bytes) -> Labels:
    """The first converted series' `job`, `instance` and point attributes (string, int and bool
    values): where Mimir's HA tracker (`findHALabels`) finds the cluster and replica labels."""
    job, instance = _job_instance({kv.key: kv.value for kv in resource})
    labels: list[tuple[str, str]] = []
    if job:
        labels.append(("job", job))
    if instance:
        labels.append(("instance", instance))
    parsed = _ATTRIBUTE_VIEWS[kind].FromString(point)
    for kv in parsed.attributes:
        if kv.value.WhichOneof("value") in ("string_value", "int_value", "bool_value"):
            labels.append((_text(kv.key), _as_string(kv.value)))
    return tuple(labels)


def _add_target_info(
    seen: dict[tuple[object, ...], set[int]], identity: tuple[object, ...], earliest: int, latest: int
) -> int:
    """The samples one resource's target_info adds: resources with the same label set make one
    series, whose samples in the same millisecond count once."""
    samples = target_info_samples(earliest, latest)
    if samples > _TARGET_INFO_DEDUPE_MAX:
        return samples
    start, step, run, last_ms = target_info_timestamps_ms(earliest, latest)
    stamps = {(start + k * step) // _NS_PER_MS for k in range(run)}
    stamps.add(last_ms)
    known = seen.setdefault(identity, set())
    new = len(stamps - known)
    known |= stamps
    return new


# --- Answers in OTLP's shape (Mimir's `writeOTLPResponse`) ---


def status_body(fmt: OtlpFormat | None, code: int, message: str) -> tuple[str, bytes]:
    """(content type, body) of a `google.rpc.Status` answer: protobuf, or JSON as Go's
    encoding/json writes the gogo Status; protobuf when the request's type was unsupported."""
    if fmt is OtlpFormat.JSON:
        return JSON, json.dumps({"code": code, "message": message}, separators=(",", ":")).encode()
    return PROTOBUF, status_pb2.Status(code=code, message=message).SerializeToString()
