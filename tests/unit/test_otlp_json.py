"""OTLP/JSON read as Mimir's pdata reads it (core/otlp_json.py): each rule against the message
built by hand, and each refusal a 400 through the counter, so the edge neither charges a body
Mimir refuses nor refuses one Mimir ingests."""

from __future__ import annotations

import pytest
from mimir_edge.core.errors import InvalidBody
from mimir_edge.core.otlp import JSON, count_otlp_request
from mimir_edge.core.otlp_json import parse_export_request
from mimir_edge.proto.opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc
from mimir_edge.proto.opentelemetry.proto.common.v1 import common_pb2 as c
from mimir_edge.proto.opentelemetry.proto.metrics.v1 import metrics_pb2 as m

from tests.otlp_requests import CUMULATIVE, DELTA, every_point_type, resource
from tests.otlp_requests import request as request_of
from tests.unit.test_otlp import otlp_json

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


def metric_json(metric: str) -> bytes:
    """A request of one metric, given as its JSON object's members."""
    return ('{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m",' + metric + "}]}]}]}").encode()


def one_metric(metric: m.Metric) -> svc.ExportMetricsServiceRequest:
    metric.name = "m"
    return svc.ExportMetricsServiceRequest(
        resource_metrics=[m.ResourceMetrics(scope_metrics=[m.ScopeMetrics(metrics=[metric])])]
    )


def gauge_point(members: str) -> bytes:
    return metric_json('"gauge":{"dataPoints":[{' + members + "}]}")


def refused(body: bytes) -> str:
    """The 400's message, through the counter the RLS calls."""
    with pytest.raises(InvalidBody) as info:
        count_otlp_request(body, content_type=JSON, content_encoding=None, max_decompressed_bytes=1 << 22)
    return str(info.value)


# --- enums ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [('"AGGREGATION_TEMPORALITY_DELTA"', DELTA), ("2", CUMULATIVE), ("7", 7), ("-1", -1)],
    ids=["name", "number", "unknown number", "negative number"],
)
def test_an_enum_is_a_known_name_or_any_int32(value: str, expected: int) -> None:
    body = metric_json('"sum":{"aggregationTemporality":' + value + "}")
    assert parse_export_request(body) == one_metric(m.Metric(sum=m.Sum(aggregation_temporality=expected)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ['"AGGREGATION_TEMPORALITY_BOGUS"', '"2"', "null", "2.0", "2147483648", "true"], ids=str
)
def test_an_enum_that_pdata_refuses_is_a_400(value: str) -> None:
    message = refused(metric_json('"sum":{"aggregationTemporality":' + value + "}"))
    assert "Sum.aggregationTemporality must be" in message


# --- exemplar ids ---


def test_trace_and_span_ids_are_hexadecimal() -> None:
    body = gauge_point(f'"exemplars":[{{"traceId":"{TRACE}","spanId":"{SPAN.upper()}"}},{{"traceId":"","spanId":""}}]')
    exemplars = [m.Exemplar(trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(SPAN)), m.Exemplar()]
    point = m.NumberDataPoint(exemplars=exemplars)
    assert parse_export_request(body) == one_metric(m.Metric(gauge=m.Gauge(data_points=[point])))


@pytest.mark.parametrize(
    "ids",
    [
        f'"traceId":"{TRACE[:30]}"',  # 15 bytes
        f'"traceId":"{TRACE[:16]}"',  # a span id's length
        '"traceId":"' + "z" * 32 + '"',
        '"traceId":"' + " ".join([TRACE[:2]] * 11)[:32] + '"',  # spaces, which bytes.fromhex skips
        f'"spanId":"{TRACE}"',
        f'"spanId":"{SPAN[:8]}"',
        '"traceId":7',
    ],
    ids=["15 bytes", "8 bytes", "not hex", "spaces", "span id 16 bytes", "span id 4 bytes", "a number"],
)
def test_an_id_that_is_not_hex_of_its_length_is_a_400(ids: str) -> None:
    assert "Exemplar." in refused(gauge_point('"exemplars":[{' + ids + "}]"))


def test_bytes_values_are_padded_standard_base64() -> None:
    body = metric_json(
        '"gauge":{"dataPoints":[{"attributes":[{"key":"b","value":{"bytesValue":"aGk/"}}],"asInt":"1"}]}'
    )
    attribute = c.KeyValue(key="b", value=c.AnyValue(bytes_value=b"hi?"))
    point = m.NumberDataPoint(attributes=[attribute], as_int=1)
    assert parse_export_request(body) == one_metric(m.Metric(gauge=m.Gauge(data_points=[point])))
    for unpadded in ("aGk", "aGk_", "a Gk/"):
        assert "AnyValue.bytesValue must be base64" in refused(body.replace(b"aGk/", unpadded.encode()))


# --- numbers ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1700000000000000000", 1700000000000000000), ('"1700000000000000000"', 1700000000000000000), ('"007"', 7)],
    ids=["number", "string", "leading zeros"],
)
def test_a_uint64_is_an_integer_number_or_decimal_string(value: str, expected: int) -> None:
    point = m.NumberDataPoint(time_unix_nano=expected)
    body = gauge_point('"timeUnixNano":' + value)
    assert parse_export_request(body) == one_metric(m.Metric(gauge=m.Gauge(data_points=[point])))


@pytest.mark.parametrize(
    "value",
    ["5.0", "1.7e18", '"1e3"', '"0x10"', '"+5"', '"-5"', "-5", '" 5"', '"1_000"', "18446744073709551616", "null"],
    ids=str,
)
def test_a_uint64_that_pdata_refuses_is_a_400(value: str) -> None:
    assert "NumberDataPoint.timeUnixNano must be" in refused(gauge_point('"timeUnixNano":' + value))


def test_a_signed_integer_string_may_carry_a_sign() -> None:
    body = gauge_point('"asInt":"-5"')
    assert parse_export_request(body) == one_metric(m.Metric(gauge=m.Gauge(data_points=[m.NumberDataPoint(as_int=-5)])))
    assert (
        parse_export_request(gauge_point('"asInt":"+5"'))
        .resource_metrics[0]
        .scope_metrics[0]
        .metrics[0]
        .gauge.data_points[0]
        .as_int
        == 5
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.5", 1.5), ('"1.5"', 1.5), ('"-Infinity"', float("-inf")), ('"+inf"', float("inf")), ('"0x1p-2"', 0.25)],
    ids=str,
)
def test_a_double_is_a_number_or_what_parsefloat_reads(value: str, expected: float) -> None:
    point = parse_export_request(gauge_point('"asDouble":' + value)).resource_metrics[0].scope_metrics[0]
    assert point.metrics[0].gauge.data_points[0].as_double == expected


def test_nan_strings_are_read() -> None:
    point = parse_export_request(gauge_point('"asDouble":"NaN"')).resource_metrics[0].scope_metrics[0]
    value = point.metrics[0].gauge.data_points[0].as_double
    assert value != value


@pytest.mark.parametrize("value", ["1e999", '"1e999"', '"nan?"', '"1_0"', '"0x10"', "NaN", "Infinity", "true"], ids=str)
def test_a_double_that_pdata_refuses_is_a_400(value: str) -> None:
    assert refused(gauge_point('"asDouble":' + value))


# --- keys given twice, oneofs, proto names, null ---


def test_a_repeated_field_given_twice_keeps_both_lists() -> None:
    one = '{"scopeMetrics":[{"metrics":[{"name":"a","gauge":{"dataPoints":[{"asInt":"1"}]}}]}]}'
    body = ('{"resourceMetrics":[' + one + '],"resource_metrics":[' + one + "," + one + "]}").encode()
    assert len(parse_export_request(body).resource_metrics) == 3
    counted = count_otlp_request(body, content_type=JSON, content_encoding=None, max_decompressed_bytes=1 << 22)
    assert counted.data_points == 3


def test_a_scalar_given_twice_takes_the_last_value() -> None:
    body = metric_json('"sum":{"aggregationTemporality":1,"aggregation_temporality":2}')
    assert parse_export_request(body) == one_metric(m.Metric(sum=m.Sum(aggregation_temporality=CUMULATIVE)))


def test_a_message_given_twice_is_merged() -> None:
    body = metric_json('"sum":{"isMonotonic":true,"dataPoints":[{}]},"sum":{"aggregationTemporality":2}')
    # A oneof member given again starts empty (pdata's SetSum(NewSum())): the first sum is gone.
    assert parse_export_request(body) == one_metric(m.Metric(sum=m.Sum(aggregation_temporality=CUMULATIVE)))
    merged = b'{"resourceMetrics":[{"resource":{"attributes":[{"key":"a"}]},"resource":{"droppedAttributesCount":3}}]}'
    resource = parse_export_request(merged).resource_metrics[0].resource
    assert [a.key for a in resource.attributes] == ["a"] and resource.dropped_attributes_count == 3


def test_the_last_member_of_a_oneof_wins() -> None:
    body = metric_json('"gauge":{"dataPoints":[{},{},{}]},"sum":{"dataPoints":[{}]}')
    assert parse_export_request(body) == one_metric(m.Metric(sum=m.Sum(data_points=[m.NumberDataPoint()])))
    counted = count_otlp_request(body, content_type=JSON, content_encoding=None, max_decompressed_bytes=1 << 22)
    assert counted.data_points == 1
    value = parse_export_request(gauge_point('"asDouble":1.5,"asInt":"2"')).resource_metrics[0].scope_metrics[0]
    assert value.metrics[0].gauge.data_points[0].WhichOneof("value") == "as_int"


def test_null_is_nothing_for_messages_and_lists_and_empty_for_strings() -> None:
    body = b'{"resourceMetrics":[{"resource":null,"scopeMetrics":[{"scope":{"name":null},"metrics":null}]}]}'
    expected = svc.ExportMetricsServiceRequest(
        resource_metrics=[m.ResourceMetrics(scope_metrics=[m.ScopeMetrics(scope=c.InstrumentationScope())])]
    )
    assert parse_export_request(body) == expected
    assert not parse_export_request(body).resource_metrics[0].HasField("resource")
    # A oneof member given as null is an empty member, as pdata's NewGauge() then reading nothing.
    assert parse_export_request(metric_json('"gauge":null')) == one_metric(m.Metric(gauge=m.Gauge()))
    assert parse_export_request(b"null") == svc.ExportMetricsServiceRequest()


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"x"', b'{"resourceMetrics":{}}', b'{"resourceMetrics":[7]}', metric_json('"gauge":[]')],
    ids=["array", "string", "object for a list", "number for a message", "list for a message"],
)
def test_the_wrong_json_type_is_a_400(body: bytes) -> None:
    assert refused(body)


def test_unknown_keys_are_skipped_whatever_their_value() -> None:
    body = metric_json('"gauge":{"dataPoints":[{"asInt":"1","future":{"x":[1,{"y":null}]}}]},"extra":true')
    point = m.NumberDataPoint(as_int=1)
    assert parse_export_request(body) == one_metric(m.Metric(gauge=m.Gauge(data_points=[point])))


def test_what_follows_the_request_object_is_not_read() -> None:
    assert parse_export_request(b'  {"resourceMetrics":[{}]} trailing') == svc.ExportMetricsServiceRequest(
        resource_metrics=[m.ResourceMetrics()]
    )


@pytest.mark.parametrize("body", [b"", b"{", b'{"a":1,}', b"\xff{}", b"NaN"], ids=str)
def test_not_json_is_a_400(body: bytes) -> None:
    assert "failed to decode JSON encoded request" in refused(body)


# --- nesting ---


def nested(depth: int) -> bytes:
    value = '{"stringValue":"x"}'
    for _ in range(depth):
        value = '{"kvlistValue":{"values":[{"key":"k","value":' + value + "}]}}"
    return ('{"resourceMetrics":[{"resource":{"attributes":[{"key":"k","value":' + value + "}]}}]}").encode()


@pytest.mark.parametrize("depth", [50, 200])
def test_deeply_nested_attributes_are_read_as_pdata_reads_them(depth: int) -> None:
    """pdata's JSON reader has no depth limit; protobuf's JSON parser stopped at 100 messages."""
    value = parse_export_request(nested(depth)).resource_metrics[0].resource.attributes[0].value
    for _ in range(depth):
        value = value.kvlist_value.values[0].value
    assert value.string_value == "x"


def test_nesting_past_pythons_recursion_limit_is_a_400_not_a_crash() -> None:
    assert "nested too deeply" in refused(nested(5000))
    assert "nested too deeply" in refused(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize("enums_as_numbers", [True, False], ids=["enum numbers", "enum names"])
def test_every_point_type_as_an_exporter_writes_it_reads_back_as_its_message(enums_as_numbers: bool) -> None:
    request = request_of((resource(), every_point_type()))
    assert parse_export_request(otlp_json(request, enums_as_numbers=enums_as_numbers)) == request
