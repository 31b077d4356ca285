from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RequestShape(_message.Message):
    __slots__ = ("resource_metrics",)
    RESOURCE_METRICS_FIELD_NUMBER: _ClassVar[int]
    resource_metrics: _containers.RepeatedCompositeFieldContainer[ResourceShape]
    def __init__(self, resource_metrics: _Optional[_Iterable[_Union[ResourceShape, _Mapping]]] = ...) -> None: ...

class ResourceShape(_message.Message):
    __slots__ = ("scope_metrics",)
    SCOPE_METRICS_FIELD_NUMBER: _ClassVar[int]
    scope_metrics: _containers.RepeatedCompositeFieldContainer[ScopeShape]
    def __init__(self, scope_metrics: _Optional[_Iterable[_Union[ScopeShape, _Mapping]]] = ...) -> None: ...

class ScopeShape(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricShape]
    def __init__(self, metrics: _Optional[_Iterable[_Union[MetricShape, _Mapping]]] = ...) -> None: ...

class MetricShape(_message.Message):
    __slots__ = ("name", "description", "unit", "gauge", "sum", "histogram", "exponential_histogram", "summary")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    GAUGE_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    EXPONENTIAL_HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    description: bytes
    unit: bytes
    gauge: PointsShape
    sum: SumShape
    histogram: HistogramShape
    exponential_histogram: SumShape
    summary: PointsShape
    def __init__(self, name: _Optional[bytes] = ..., description: _Optional[bytes] = ..., unit: _Optional[bytes] = ..., gauge: _Optional[_Union[PointsShape, _Mapping]] = ..., sum: _Optional[_Union[SumShape, _Mapping]] = ..., histogram: _Optional[_Union[HistogramShape, _Mapping]] = ..., exponential_histogram: _Optional[_Union[SumShape, _Mapping]] = ..., summary: _Optional[_Union[PointsShape, _Mapping]] = ...) -> None: ...

class PointsShape(_message.Message):
    __slots__ = ("data_points",)
    DATA_POINTS_FIELD_NUMBER: _ClassVar[int]
    data_points: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, data_points: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SumShape(_message.Message):
    __slots__ = ("data_points", "aggregation_temporality", "is_monotonic")
    DATA_POINTS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_TEMPORALITY_FIELD_NUMBER: _ClassVar[int]
    IS_MONOTONIC_FIELD_NUMBER: _ClassVar[int]
    data_points: _containers.RepeatedScalarFieldContainer[bytes]
    aggregation_temporality: int
    is_monotonic: bool
    def __init__(self, data_points: _Optional[_Iterable[bytes]] = ..., aggregation_temporality: _Optional[int] = ..., is_monotonic: _Optional[bool] = ...) -> None: ...

class HistogramShape(_message.Message):
    __slots__ = ("data_points", "aggregation_temporality")
    DATA_POINTS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_TEMPORALITY_FIELD_NUMBER: _ClassVar[int]
    data_points: _containers.RepeatedCompositeFieldContainer[HistogramPointShape]
    aggregation_temporality: int
    def __init__(self, data_points: _Optional[_Iterable[_Union[HistogramPointShape, _Mapping]]] = ..., aggregation_temporality: _Optional[int] = ...) -> None: ...

class HistogramPointShape(_message.Message):
    __slots__ = ("sum", "bucket_counts", "explicit_bounds")
    SUM_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNTS_FIELD_NUMBER: _ClassVar[int]
    EXPLICIT_BOUNDS_FIELD_NUMBER: _ClassVar[int]
    sum: float
    bucket_counts: _containers.RepeatedScalarFieldContainer[int]
    explicit_bounds: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, sum: _Optional[float] = ..., bucket_counts: _Optional[_Iterable[int]] = ..., explicit_bounds: _Optional[_Iterable[float]] = ...) -> None: ...

class RequestTotals(_message.Message):
    __slots__ = ("resource_metrics",)
    RESOURCE_METRICS_FIELD_NUMBER: _ClassVar[int]
    resource_metrics: _containers.RepeatedCompositeFieldContainer[ResourceTotals]
    def __init__(self, resource_metrics: _Optional[_Iterable[_Union[ResourceTotals, _Mapping]]] = ...) -> None: ...

class ResourceTotals(_message.Message):
    __slots__ = ("resource", "scope_metrics")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_METRICS_FIELD_NUMBER: _ClassVar[int]
    resource: ResourceBytes
    scope_metrics: ScopeTotals
    def __init__(self, resource: _Optional[_Union[ResourceBytes, _Mapping]] = ..., scope_metrics: _Optional[_Union[ScopeTotals, _Mapping]] = ...) -> None: ...

class ScopeTotals(_message.Message):
    __slots__ = ("scope", "metrics")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    scope: ScopeBytes
    metrics: MetricTotals
    def __init__(self, scope: _Optional[_Union[ScopeBytes, _Mapping]] = ..., metrics: _Optional[_Union[MetricTotals, _Mapping]] = ...) -> None: ...

class MetricTotals(_message.Message):
    __slots__ = ("gauge", "sum", "histogram", "exponential_histogram", "summary", "metadata")
    GAUGE_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    EXPONENTIAL_HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    gauge: NumberPoints
    sum: NumberPoints
    histogram: HistogramPoints
    exponential_histogram: ExponentialPoints
    summary: SummaryPoints
    metadata: _containers.RepeatedCompositeFieldContainer[KeyValueBytes]
    def __init__(self, gauge: _Optional[_Union[NumberPoints, _Mapping]] = ..., sum: _Optional[_Union[NumberPoints, _Mapping]] = ..., histogram: _Optional[_Union[HistogramPoints, _Mapping]] = ..., exponential_histogram: _Optional[_Union[ExponentialPoints, _Mapping]] = ..., summary: _Optional[_Union[SummaryPoints, _Mapping]] = ..., metadata: _Optional[_Iterable[_Union[KeyValueBytes, _Mapping]]] = ...) -> None: ...

class RequestMerged(_message.Message):
    __slots__ = ("resource_metrics",)
    RESOURCE_METRICS_FIELD_NUMBER: _ClassVar[int]
    resource_metrics: _containers.RepeatedCompositeFieldContainer[ResourceMerged]
    def __init__(self, resource_metrics: _Optional[_Iterable[_Union[ResourceMerged, _Mapping]]] = ...) -> None: ...

class ResourceMerged(_message.Message):
    __slots__ = ("resource", "scope_metrics")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_METRICS_FIELD_NUMBER: _ClassVar[int]
    resource: ResourceBytes
    scope_metrics: _containers.RepeatedCompositeFieldContainer[ScopeMerged]
    def __init__(self, resource: _Optional[_Union[ResourceBytes, _Mapping]] = ..., scope_metrics: _Optional[_Iterable[_Union[ScopeMerged, _Mapping]]] = ...) -> None: ...

class ScopeMerged(_message.Message):
    __slots__ = ("scope", "metrics")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    scope: ScopeBytes
    metrics: _containers.RepeatedCompositeFieldContainer[MetricMerged]
    def __init__(self, scope: _Optional[_Union[ScopeBytes, _Mapping]] = ..., metrics: _Optional[_Iterable[_Union[MetricMerged, _Mapping]]] = ...) -> None: ...

class MetricMerged(_message.Message):
    __slots__ = ("gauge", "sum", "histogram", "exponential_histogram", "summary", "metadata")
    GAUGE_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    EXPONENTIAL_HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    gauge: NumberPoints
    sum: NumberPoints
    histogram: HistogramPoints
    exponential_histogram: ExponentialPoints
    summary: SummaryPoints
    metadata: _containers.RepeatedCompositeFieldContainer[KeyValueBytes]
    def __init__(self, gauge: _Optional[_Union[NumberPoints, _Mapping]] = ..., sum: _Optional[_Union[NumberPoints, _Mapping]] = ..., histogram: _Optional[_Union[HistogramPoints, _Mapping]] = ..., exponential_histogram: _Optional[_Union[ExponentialPoints, _Mapping]] = ..., summary: _Optional[_Union[SummaryPoints, _Mapping]] = ..., metadata: _Optional[_Iterable[_Union[KeyValueBytes, _Mapping]]] = ...) -> None: ...

class NumberPoints(_message.Message):
    __slots__ = ("data_points",)
    DATA_POINTS_FIELD_NUMBER: _ClassVar[int]
    data_points: NumberPointsMerged
    def __init__(self, data_points: _Optional[_Union[NumberPointsMerged, _Mapping]] = ...) -> None: ...

class NumberPointsMerged(_message.Message):
    __slots__ = ("time_unix_nano", "exemplars")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: _containers.RepeatedScalarFieldContainer[int]
    exemplars: _containers.RepeatedCompositeFieldContainer[ExemplarCount]
    def __init__(self, time_unix_nano: _Optional[_Iterable[int]] = ..., exemplars: _Optional[_Iterable[_Union[ExemplarCount, _Mapping]]] = ...) -> None: ...

class HistogramPoints(_message.Message):
    __slots__ = ("data_points",)
    DATA_POINTS_FIELD_NUMBER: _ClassVar[int]
    data_points: HistogramPointsMerged
    def __init__(self, data_points: _Optional[_Union[HistogramPointsMerged, _Mapping]] = ...) -> None: ...

class HistogramPointsMerged(_message.Message):
    __slots__ = ("time_unix_nano", "exemplars")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: _containers.RepeatedScalarFieldContainer[int]
    exemplars: _containers.RepeatedCompositeFieldContainer[ExemplarCount]
    def __init__(self, time_unix_nano: _Optional[_Iterable[int]] = ..., exemplars: _Optional[_Iterable[_Union[ExemplarCount, _Mapping]]] = ...) -> None: ...

class ExponentialPoints(_message.Message):
    __slots__ = ("data_points",)
    DATA_POINTS_FIELD_NUMBER: _ClassVar[int]
    data_points: ExponentialPointsMerged
    def __init__(self, data_points: _Optional[_Union[ExponentialPointsMerged, _Mapping]] = ...) -> None: ...

class ExponentialPointsMerged(_message.Message):
    __slots__ = ("time_unix_nano", "positive", "negative", "exemplars")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: _containers.RepeatedScalarFieldContainer[int]
    positive: BucketsMerged
    negative: BucketsMerged
    exemplars: _containers.RepeatedCompositeFieldContainer[ExemplarCount]
    def __init__(self, time_unix_nano: _Optional[_Iterable[int]] = ..., positive: _Optional[_Union[BucketsMerged, _Mapping]] = ..., negative: _Optional[_Union[BucketsMerged, _Mapping]] = ..., exemplars: _Optional[_Iterable[_Union[ExemplarCount, _Mapping]]] = ...) -> None: ...

class BucketsMerged(_message.Message):
    __slots__ = ("offset", "bucket_counts")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNTS_FIELD_NUMBER: _ClassVar[int]
    offset: _containers.RepeatedScalarFieldContainer[int]
    bucket_counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, offset: _Optional[_Iterable[int]] = ..., bucket_counts: _Optional[_Iterable[int]] = ...) -> None: ...

class SummaryPoints(_message.Message):
    __slots__ = ("data_points",)
    DATA_POINTS_FIELD_NUMBER: _ClassVar[int]
    data_points: SummaryPointsMerged
    def __init__(self, data_points: _Optional[_Union[SummaryPointsMerged, _Mapping]] = ...) -> None: ...

class SummaryPointsMerged(_message.Message):
    __slots__ = ("time_unix_nano", "quantile_values")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    QUANTILE_VALUES_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: _containers.RepeatedScalarFieldContainer[int]
    quantile_values: _containers.RepeatedCompositeFieldContainer[QuantileValue]
    def __init__(self, time_unix_nano: _Optional[_Iterable[int]] = ..., quantile_values: _Optional[_Iterable[_Union[QuantileValue, _Mapping]]] = ...) -> None: ...

class QuantileValue(_message.Message):
    __slots__ = ("quantile", "value")
    QUANTILE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    quantile: float
    value: float
    def __init__(self, quantile: _Optional[float] = ..., value: _Optional[float] = ...) -> None: ...

class Timestamps(_message.Message):
    __slots__ = ("time_unix_nano",)
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, time_unix_nano: _Optional[_Iterable[int]] = ...) -> None: ...

class ExemplarCount(_message.Message):
    __slots__ = ("time_unix_nano", "as_double", "span_id", "trace_id", "as_int")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    AS_DOUBLE_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    AS_INT_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: int
    as_double: float
    span_id: bytes
    trace_id: bytes
    as_int: int
    def __init__(self, time_unix_nano: _Optional[int] = ..., as_double: _Optional[float] = ..., span_id: _Optional[bytes] = ..., trace_id: _Optional[bytes] = ..., as_int: _Optional[int] = ...) -> None: ...

class PointAttributes7(_message.Message):
    __slots__ = ("attributes",)
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.RepeatedCompositeFieldContainer[KeyValueBytes]
    def __init__(self, attributes: _Optional[_Iterable[_Union[KeyValueBytes, _Mapping]]] = ...) -> None: ...

class PointAttributes9(_message.Message):
    __slots__ = ("attributes",)
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.RepeatedCompositeFieldContainer[KeyValueBytes]
    def __init__(self, attributes: _Optional[_Iterable[_Union[KeyValueBytes, _Mapping]]] = ...) -> None: ...

class PointAttributes1(_message.Message):
    __slots__ = ("attributes",)
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.RepeatedCompositeFieldContainer[KeyValueBytes]
    def __init__(self, attributes: _Optional[_Iterable[_Union[KeyValueBytes, _Mapping]]] = ...) -> None: ...

class KeyValueBytes(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: AnyValueBytes
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[_Union[AnyValueBytes, _Mapping]] = ...) -> None: ...

class AnyValueBytes(_message.Message):
    __slots__ = ("string_value", "bool_value", "int_value", "double_value", "array_value", "kvlist_value", "bytes_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    ARRAY_VALUE_FIELD_NUMBER: _ClassVar[int]
    KVLIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: bytes
    bool_value: bool
    int_value: int
    double_value: float
    array_value: bytes
    kvlist_value: bytes
    bytes_value: bytes
    def __init__(self, string_value: _Optional[bytes] = ..., bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., array_value: _Optional[bytes] = ..., kvlist_value: _Optional[bytes] = ..., bytes_value: _Optional[bytes] = ...) -> None: ...

class ResourceBytes(_message.Message):
    __slots__ = ("attributes", "dropped_attributes_count")
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_ATTRIBUTES_COUNT_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.RepeatedCompositeFieldContainer[KeyValueBytes]
    dropped_attributes_count: int
    def __init__(self, attributes: _Optional[_Iterable[_Union[KeyValueBytes, _Mapping]]] = ..., dropped_attributes_count: _Optional[int] = ...) -> None: ...

class ScopeBytes(_message.Message):
    __slots__ = ("name", "version", "attributes", "dropped_attributes_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_ATTRIBUTES_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    version: bytes
    attributes: _containers.RepeatedCompositeFieldContainer[KeyValueBytes]
    dropped_attributes_count: int
    def __init__(self, name: _Optional[bytes] = ..., version: _Optional[bytes] = ..., attributes: _Optional[_Iterable[_Union[KeyValueBytes, _Mapping]]] = ..., dropped_attributes_count: _Optional[int] = ...) -> None: ...
