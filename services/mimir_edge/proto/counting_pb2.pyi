from mimir_edge.proto.prometheus import types_pb2 as _types_pb2
from mimir_edge.proto.io.prometheus.write.v2 import types_pb2 as _types_pb2_1
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WriteRequestShape(_message.Message):
    __slots__ = ("timeseries", "metadata")
    TIMESERIES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    timeseries: _containers.RepeatedScalarFieldContainer[bytes]
    metadata: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, timeseries: _Optional[_Iterable[bytes]] = ..., metadata: _Optional[_Iterable[bytes]] = ...) -> None: ...

class WriteRequestMerged(_message.Message):
    __slots__ = ("timeseries", "metadata")
    TIMESERIES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    timeseries: MergedSeries
    metadata: _containers.RepeatedCompositeFieldContainer[MetricMetadataBytes]
    def __init__(self, timeseries: _Optional[_Union[MergedSeries, _Mapping]] = ..., metadata: _Optional[_Iterable[_Union[MetricMetadataBytes, _Mapping]]] = ...) -> None: ...

class MergedSeries(_message.Message):
    __slots__ = ("samples", "exemplars", "histograms")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAMS_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[_types_pb2.Sample]
    exemplars: _containers.RepeatedCompositeFieldContainer[ExemplarCount]
    histograms: _containers.RepeatedCompositeFieldContainer[_types_pb2.Histogram]
    def __init__(self, samples: _Optional[_Iterable[_Union[_types_pb2.Sample, _Mapping]]] = ..., exemplars: _Optional[_Iterable[_Union[ExemplarCount, _Mapping]]] = ..., histograms: _Optional[_Iterable[_Union[_types_pb2.Histogram, _Mapping]]] = ...) -> None: ...

class ExemplarCount(_message.Message):
    __slots__ = ("value", "timestamp")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    value: float
    timestamp: int
    def __init__(self, value: _Optional[float] = ..., timestamp: _Optional[int] = ...) -> None: ...

class MetricMetadataBytes(_message.Message):
    __slots__ = ("type", "metric_family_name", "help", "unit")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FAMILY_NAME_FIELD_NUMBER: _ClassVar[int]
    HELP_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    type: int
    metric_family_name: bytes
    help: bytes
    unit: bytes
    def __init__(self, type: _Optional[int] = ..., metric_family_name: _Optional[bytes] = ..., help: _Optional[bytes] = ..., unit: _Optional[bytes] = ...) -> None: ...

class RequestV2Shape(_message.Message):
    __slots__ = ("symbols", "timeseries")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    TIMESERIES_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[bytes]
    timeseries: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, symbols: _Optional[_Iterable[bytes]] = ..., timeseries: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RequestV2Merged(_message.Message):
    __slots__ = ("symbols", "timeseries")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    TIMESERIES_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[bytes]
    timeseries: MergedSeriesV2
    def __init__(self, symbols: _Optional[_Iterable[bytes]] = ..., timeseries: _Optional[_Union[MergedSeriesV2, _Mapping]] = ...) -> None: ...

class MergedSeriesV2(_message.Message):
    __slots__ = ("labels_refs", "samples", "histograms", "exemplars", "metadata", "created_timestamp")
    LABELS_REFS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAMS_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    labels_refs: _containers.RepeatedScalarFieldContainer[int]
    samples: _containers.RepeatedCompositeFieldContainer[_types_pb2_1.Sample]
    histograms: _containers.RepeatedCompositeFieldContainer[_types_pb2_1.Histogram]
    exemplars: _containers.RepeatedCompositeFieldContainer[_types_pb2_1.Exemplar]
    metadata: MergedMetadataV2
    created_timestamp: int
    def __init__(self, labels_refs: _Optional[_Iterable[int]] = ..., samples: _Optional[_Iterable[_Union[_types_pb2_1.Sample, _Mapping]]] = ..., histograms: _Optional[_Iterable[_Union[_types_pb2_1.Histogram, _Mapping]]] = ..., exemplars: _Optional[_Iterable[_Union[_types_pb2_1.Exemplar, _Mapping]]] = ..., metadata: _Optional[_Union[MergedMetadataV2, _Mapping]] = ..., created_timestamp: _Optional[int] = ...) -> None: ...

class MergedMetadataV2(_message.Message):
    __slots__ = ("type", "help_ref", "unit_ref")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    HELP_REF_FIELD_NUMBER: _ClassVar[int]
    UNIT_REF_FIELD_NUMBER: _ClassVar[int]
    type: int
    help_ref: int
    unit_ref: int
    def __init__(self, type: _Optional[int] = ..., help_ref: _Optional[int] = ..., unit_ref: _Optional[int] = ...) -> None: ...

class RequestV2Metadata(_message.Message):
    __slots__ = ("symbols", "timeseries")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    TIMESERIES_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[bytes]
    timeseries: _containers.RepeatedCompositeFieldContainer[SeriesMetadataV2]
    def __init__(self, symbols: _Optional[_Iterable[bytes]] = ..., timeseries: _Optional[_Iterable[_Union[SeriesMetadataV2, _Mapping]]] = ...) -> None: ...

class SeriesMetadataV2(_message.Message):
    __slots__ = ("labels_refs", "metadata")
    LABELS_REFS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    labels_refs: _containers.RepeatedScalarFieldContainer[int]
    metadata: _containers.RepeatedCompositeFieldContainer[MetadataRefsV2]
    def __init__(self, labels_refs: _Optional[_Iterable[int]] = ..., metadata: _Optional[_Iterable[_Union[MetadataRefsV2, _Mapping]]] = ...) -> None: ...

class MetadataRefsV2(_message.Message):
    __slots__ = ("type", "help_ref", "unit_ref")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    HELP_REF_FIELD_NUMBER: _ClassVar[int]
    UNIT_REF_FIELD_NUMBER: _ClassVar[int]
    type: int
    help_ref: int
    unit_ref: int
    def __init__(self, type: _Optional[int] = ..., help_ref: _Optional[int] = ..., unit_ref: _Optional[int] = ...) -> None: ...

class SeriesLabels(_message.Message):
    __slots__ = ("labels",)
    LABELS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedCompositeFieldContainer[LabelBytes]
    def __init__(self, labels: _Optional[_Iterable[_Union[LabelBytes, _Mapping]]] = ...) -> None: ...

class LabelBytes(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    value: bytes
    def __init__(self, name: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class SeriesLabelRefs(_message.Message):
    __slots__ = ("labels_refs",)
    LABELS_REFS_FIELD_NUMBER: _ClassVar[int]
    labels_refs: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, labels_refs: _Optional[_Iterable[int]] = ...) -> None: ...
