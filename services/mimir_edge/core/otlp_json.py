"""OTLP/JSON read as Mimir reads it, into the protobuf message, so both formats are counted by one
path.

Mimir decodes OTLP/JSON with the OpenTelemetry Collector's pdata (`pmetricotlp.ExportRequest.
UnmarshalJSON`: generated code over a jsoniter iterator, `pdata/internal/json/iterator.go`), not
with a protobuf JSON parser. The two disagree on malformed and unusual bodies, and each
disagreement is a request the edge would charge that Mimir refuses with 400, or refuse that Mimir
ingests. So this reader follows pdata, rule by rule:

- A key is a field's lowerCamelCase JSON name or its proto name (`time_unix_nano`); any other key
  is skipped, whatever its value (unknown fields are ignored, as OTLP asks of receivers).
- A key given twice: a scalar takes the last value; a repeated field appends both lists; a message
  is read again into the same message (merged). A oneof member replaces whatever the oneof held,
  and a message member starts empty (`{"gauge":…,"sum":…}` is a sum).
- `null`: for a message or a list, nothing; for a string, "" (jsoniter's ReadString); as a oneof
  message member, an empty member; for a number, a bool or an enum, an error.
- Integers: a JSON number without fraction or exponent, or a string of decimal digits (a sign only
  for signed types), in the type's range. `5.0`, `"1e3"` and `"0x10"` are errors.
- Floats: a JSON number in float64's range, or a string Go's `strconv.ParseFloat` reads (decimal,
  hexadecimal with a `p` exponent, `Inf`/`Infinity`/`NaN` in any case).
- Enums: a known value name, or an integer in int32's range (unknown numbers are kept, as proto3
  keeps them; the counter then drops what Mimir's translator drops). An unknown name is an error.
- Exemplar `traceId`/`spanId`: hexadecimal of exactly 16/8 bytes, or "" (`data/bytesid.go`). Other
  bytes (`bytesValue`): standard base64 with padding.
- Nesting: pdata's JSON reader has no depth limit. Ours is Python's recursion limit (about 240
  nested attribute values by default); deeper bodies are refused with 400.
- After the top-level object, the rest of the body is not read (jsoniter stops there).

Refusals are `InvalidBody` (400) naming the field; Mimir's message is jsoniter's text, which this
does not reproduce.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from mimir_edge.core.errors import InvalidBody
from mimir_edge.proto.opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its members in order, duplicates kept."""


_DECIMAL = re.compile(r"[0-9]+")
_SIGNED_DECIMAL = re.compile(r"[+-]?[0-9]+")
# strconv.ParseFloat's syntax, without underscores (allowed only after a base prefix there, and
# hexadecimal floats are read by float.fromhex below).
_DECIMAL_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+")
_SPECIAL_FLOAT = re.compile(r"[+-]?(inf|infinity)|nan", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]*")

#: The bytes fields pdata reads as hexadecimal ids (as `_what` names them), with their exact lengths.
_HEX_IDS = {"Exemplar.traceId": 16, "Exemplar.spanId": 8}

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


def parse_export_request(raw: bytes) -> metrics_service_pb2.ExportMetricsServiceRequest:
    """The ExportMetricsServiceRequest an OTLP/JSON body holds, or InvalidBody (400)."""
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    try:
        text = raw.decode("utf-8")
        start = len(text) - len(text.lstrip(" \t\n\r"))
        document, _ = _DECODER.raw_decode(text, start)
        if document is not None:
            _fill(request, _expect_object(document, "the request"))
    except InvalidBody:
        raise
    except RecursionError:
        raise InvalidBody("failed to decode JSON encoded request: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise InvalidBody(f"failed to decode JSON encoded request: {str(exc)[:200]}") from None
    return request


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_Pairs, parse_constant=_no_constants)


def _expect_object(value: object, what: str) -> _Pairs:
    if not isinstance(value, _Pairs):
        raise _wrong(what, "an object", value)
    return value


def _wrong(what: str, expected: str, value: object) -> InvalidBody:
    shown = "an object" if isinstance(value, _Pairs) else json.dumps(value)[:40]
    return InvalidBody(f"failed to decode JSON encoded request: {what} must be {expected}, not {shown}")


@functools.cache
def _fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """Every key pdata reads for this message: JSON names and proto names."""
    keys: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        keys[field.json_name] = field
        keys[field.name] = field
    return keys


def _what(field: FieldDescriptor) -> str:
    """How a refusal names a field: `NumberDataPoint.timeUnixNano`."""
    return f"{field.containing_type.name}.{field.json_name}"


def _fill(message: Message, members: _Pairs) -> None:
    fields = _fields(message.DESCRIPTOR)
    for key, value in members:
        field = fields.get(key)
        if field is None:
            continue
        name = field.name
        if field.is_repeated:
            if value is None:
                continue
            if not isinstance(value, list) or isinstance(value, _Pairs):
                raise _wrong(_what(field), "a list", value)
            container = getattr(message, name)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for element in value:
                    item = container.add()
                    if element is not None:
                        _fill(item, _expect_object(element, _what(field)))
            else:
                container.extend(_scalar(field, element) for element in value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            oneof = field.containing_oneof is not None and not _synthetic(field)
            if oneof:
                message.ClearField(name)
            elif value is None:
                continue
            sub = getattr(message, name)
            sub.SetInParent()
            if value is not None:
                _fill(sub, _expect_object(value, _what(field)))
        else:
            setattr(message, name, _scalar(field, value))


def _synthetic(field: FieldDescriptor) -> bool:
    """A proto3 `optional` field's one-member oneof is not a real oneof."""
    oneof = field.containing_oneof
    return oneof is not None and len(oneof.fields) == 1 and oneof.name == "_" + field.name


def _scalar(field: FieldDescriptor, value: object) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise _wrong(_what(field), "a string", value)
        return value
    if kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise _wrong(_what(field), "true or false", value)
        return value
    if kind in _INT_RANGES:
        return _integer(_what(field), value, *_INT_RANGES[kind])
    if kind in _FLOATS:
        return _float(_what(field), value)
    if kind == FieldDescriptor.TYPE_ENUM:
        return _enum(_what(field), field.enum_type, value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return _bytes(_what(field), value)
    raise InvalidBody(f"failed to decode JSON encoded request: {_what(field)} has an unreadable type")


def _integer(what: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _wrong(what, "an integer", value)
    if isinstance(value, str):
        if not (_SIGNED_DECIMAL if low < 0 else _DECIMAL).fullmatch(value):
            raise _wrong(what, "a decimal integer", value)
        value = int(value)
    if not low <= value <= high:
        raise _wrong(what, f"in {low}..{high}", value)
    return value


def _float(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _wrong(what, "a number", value)
    if isinstance(value, str):
        if _DECIMAL_FLOAT.fullmatch(value):
            number = float(value)
        elif _HEX_FLOAT.fullmatch(value):
            number = float.fromhex(value)
        elif _SPECIAL_FLOAT.fullmatch(value):
            return float(value)
        else:
            raise _wrong(what, "a number", value)
    else:
        try:
            number = float(value)
        except OverflowError:  # an integer literal past float64's range
            number = math.inf
    if math.isinf(number):  # a finite literal out of float64's range: ParseFloat's ErrRange
        raise _wrong(what, "in float64's range", value)
    return number


def _enum(what: str, enum: EnumDescriptor, value: object) -> int:
    if isinstance(value, str):
        known = enum.values_by_name.get(value)
        if known is None:
            raise _wrong(what, f"a value of {enum.name}", value)
        number: int = known.number
        return number
    return _integer(what, value, -(2**31), 2**31 - 1)


def _bytes(what: str, value: object) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise _wrong(what, "a string", value)
    size = _HEX_IDS.get(what)
    decode: Callable[[str], bytes]
    if size is not None:
        if value and (len(value) != 2 * size or not _HEX.fullmatch(value)):
            raise _wrong(what, f"{size} bytes in hexadecimal", value)
        decode = bytes.fromhex
    else:
        decode = functools.partial(base64.b64decode, validate=True)
    try:
        return decode(value)
    except (ValueError, binascii.Error):
        raise _wrong(what, "base64", value) from None
