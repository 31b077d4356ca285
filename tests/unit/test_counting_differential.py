"""The compiled walker and upb count every body alike: same WriteCounts, or the same error class.

Bodies come from tests/wire_bodies.py (valid RW1/RW2 requests and their mutations); the cases
below pin each wire-format rule the walker mirrors. bench/counting_fuzz.py runs a million.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mimir_edge.core import remote_write
from mimir_edge.core.errors import InvalidBody
from mimir_edge.core.remote_write import Counter, Protocol, WriteCounts, count_decompressed, select_counter
from mimir_edge.localstack.traffic import Shape, rw1_request, rw2_request
from mimir_edge.rls.settings import parse_settings

from tests.wire_bodies import EGROUP, I32, I64, LEN, SGROUP, VARINT, Field, Generator, encode, varint


@pytest.fixture(autouse=True, scope="module")
def _walker_is_built() -> None:
    assert remote_write._walker is not None, (
        "the compiled walker is missing: run `make walker` (or `python tools/build_walker.py`; needs gcc and "
        "Python's headers, Debian: apt-get install gcc python3-dev)"
    )


def outcome(raw: bytes, protocol: Protocol, counter: Counter) -> WriteCounts | str:
    try:
        return count_decompressed(raw, protocol, counter)
    except InvalidBody:
        return "InvalidBody"


def assert_same(raw: bytes, protocol: Protocol) -> WriteCounts | str:
    native = outcome(raw, protocol, Counter.NATIVE)
    assert native == outcome(raw, protocol, Counter.UPB), raw.hex()
    return native


@settings(max_examples=600, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_generated_and_mutated_bodies(rng: random.Random) -> None:
    number, raw = Generator(rng).body()
    assert_same(raw, Protocol.RW1 if number == 1 else Protocol.RW2)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(raw=st.binary(max_size=512), rw2=st.booleans())
def test_random_bytes(raw: bytes, rw2: bool) -> None:
    assert_same(raw, Protocol.RW2 if rw2 else Protocol.RW1)


@pytest.mark.parametrize(
    "shape",
    [
        Shape(series=2000),
        Shape(series=4, samples_per_series=2, histograms_per_series=1, exemplars_per_series=3, metadata=3),
        Shape(series=3, labels_per_series=40),
    ],
    ids=repr,
)
@pytest.mark.parametrize(("build", "protocol"), [(rw1_request, Protocol.RW1), (rw2_request, Protocol.RW2)])
def test_realistic_bodies_count_exactly(shape: Shape, build, protocol: Protocol) -> None:  # type: ignore[no-untyped-def]
    counts = assert_same(build(shape), protocol)
    assert isinstance(counts, WriteCounts)
    assert counts.items == shape.items


SAMPLE = [Field(1, I64, 0), Field(2, VARINT, 5)]


def rw1_series(*fields: Field) -> bytes:
    return encode([Field(1, LEN, [Field(2, LEN, SAMPLE), *fields])])


def nested_groups(depth: int) -> list[Field]:
    group: list[Field] = []
    for _ in range(depth):
        group = [Field(7, SGROUP, group)]
    return group


# Each rule of _walker.c's header, at and across its edge. `valid` says what upb does, so a
# change of protobuf version that moves an edge shows here first.
RULES = [
    ("10-byte varint", rw1_series(Field(2, LEN, [Field(2, VARINT, 5, value_pad=9)])), Protocol.RW1, True),
    ("11-byte varint", rw1_series(Field(2, LEN, [Field(2, VARINT, 5, value_pad=10)])), Protocol.RW1, False),
    ("5-byte tag", rw1_series(Field(2, LEN, SAMPLE, tag_pad=4)), Protocol.RW1, True),
    ("6-byte tag", rw1_series(Field(2, LEN, SAMPLE, tag_pad=5)), Protocol.RW1, False),
    ("tag over 32 bits", b"\x0a\x06" + b"\xff\xff\xff\xff\x1f" + b"\x00", Protocol.RW1, False),
    ("5-byte length", rw1_series(Field(2, LEN, SAMPLE, value_pad=4)), Protocol.RW1, True),
    ("6-byte length", rw1_series(Field(2, LEN, SAMPLE, value_pad=5)), Protocol.RW1, False),
    ("6-byte length of an unknown field", encode([Field(9, LEN, b"abc", value_pad=5)]), Protocol.RW1, False),
    ("length past the end", b"\x0a\x05\x12\x00", Protocol.RW1, False),
    ("length of 2^31 - 1", b"\x22" + varint(2**31 - 1), Protocol.RW1, False),
    ("truncated fixed64", rw1_series(Field(2, LEN, b"\x09\x00\x00")), Protocol.RW1, False),
    ("field number 0", encode([Field(0, VARINT, 1)]), Protocol.RW1, False),
    ("wire type 6", b"\x0e", Protocol.RW1, False),
    ("stray end-group", b"\x0c", Protocol.RW1, False),
    ("end-group inside a sub-message", rw1_series(Field(2, LEN, [Field(3, EGROUP, 0)])), Protocol.RW1, False),
    ("mismatched end-group", b"\x3b\x44", Protocol.RW1, False),
    ("unterminated group", b"\x3b\x08\x01", Protocol.RW1, False),
    # upb skips an unknown group's contents with its wire reader, which allows field number 0.
    ("field number 0 inside a group", encode([Field(7, SGROUP, [Field(0, VARINT, 1)])]), Protocol.RW1, True),
    (
        "field number 0 in a nested group of a RW2 series",
        encode([Field(5, LEN, [Field(9, SGROUP, [Field(8, SGROUP, [Field(0, LEN, b"")])])])]),
        Protocol.RW2,
        True,
    ),
    (
        "unknown fields of every wire type",
        encode([Field(9, w, 1 if w != LEN else b"x") for w in (0, 1, 2, 5)]),
        Protocol.RW1,
        True,
    ),
    ("groups 100 deep at the top", encode(nested_groups(100)), Protocol.RW1, True),
    ("groups 101 deep at the top", encode(nested_groups(101)), Protocol.RW1, False),
    (
        "groups 97 deep in a bucket span",
        encode([Field(1, LEN, [Field(4, LEN, [Field(8, LEN, nested_groups(97))])])]),
        Protocol.RW1,
        True,
    ),
    (
        "groups 98 deep in a bucket span",
        encode([Field(1, LEN, [Field(4, LEN, [Field(8, LEN, nested_groups(98))])])]),
        Protocol.RW1,
        False,
    ),
    ("RW1 series as a varint", b"\x08\x01", Protocol.RW1, False),
    ("RW1 metadata as a group", b"\x1b\x1c", Protocol.RW1, False),
    ("RW1 sample as a varint: skipped", rw1_series(Field(2, VARINT, 1)), Protocol.RW1, True),
    ("RW1 labels as a group: skipped", rw1_series(Field(1, SGROUP, [])), Protocol.RW1, True),
    ("packed deltas", rw1_series(Field(4, LEN, [Field(9, LEN, b"\x01\x02\x80\x01")])), Protocol.RW1, True),
    ("packed deltas cut in a varint", rw1_series(Field(4, LEN, [Field(9, LEN, b"\x01\x80")])), Protocol.RW1, False),
    ("packed doubles", rw1_series(Field(4, LEN, [Field(10, LEN, struct.pack("<2d", 1, 2))])), Protocol.RW1, True),
    ("packed doubles of 9 bytes", rw1_series(Field(4, LEN, [Field(13, LEN, bytes(9))])), Protocol.RW1, False),
    ("unpacked doubles", rw1_series(Field(4, LEN, [Field(16, I64, 1), Field(16, I64, 2)])), Protocol.RW1, True),
    ("packed singular sum: unknown", rw1_series(Field(4, LEN, [Field(3, LEN, b"\xff")])), Protocol.RW1, True),
    ("RW2 symbols as a varint", b"\x20\x01", Protocol.RW2, False),
    ("RW2 series as fixed32", encode([Field(5, I32, 1)]), Protocol.RW2, False),
    ("RW2 refs unpacked", encode([Field(5, LEN, [Field(1, VARINT, 1), Field(1, VARINT, 2)])]), Protocol.RW2, True),
    ("RW2 refs as fixed64", encode([Field(5, LEN, [Field(1, I64, 1)])]), Protocol.RW2, False),
    ("RW2 created timestamp packed", encode([Field(5, LEN, [Field(6, LEN, b"\x01")])]), Protocol.RW2, False),
    (
        "RW2 refs out of range",
        encode([Field(4, LEN, b""), Field(5, LEN, [Field(1, LEN, b"\x07\x09")])]),
        Protocol.RW2,
        True,
    ),
    (
        "RW2 packed metadata types",
        encode([Field(5, LEN, [Field(5, LEN, [Field(1, LEN, b"\x01\x02\x00")])])]),
        Protocol.RW2,
        True,
    ),
    ("RW2 exemplar refs cut", encode([Field(5, LEN, [Field(4, LEN, [Field(1, LEN, b"\xff")])])]), Protocol.RW2, False),
    ("RW2 sample as a varint", encode([Field(5, LEN, [Field(2, VARINT, 1)])]), Protocol.RW2, False),
    (
        "RW2 histogram with spans",
        encode([Field(5, LEN, [Field(3, LEN, [Field(11, LEN, [Field(2, VARINT, 3)])])])]),
        Protocol.RW2,
        True,
    ),
    ("RW2 unknown field in a series", encode([Field(5, LEN, [Field(9, LEN, b"")])]), Protocol.RW2, True),
]


@pytest.mark.parametrize(("raw", "protocol", "valid"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_wire_format_rules(raw: bytes, protocol: Protocol, valid: bool) -> None:
    result = assert_same(raw, protocol)
    assert isinstance(result, WriteCounts) is valid


def test_metadata_types_count_per_value() -> None:
    raw = encode([Field(5, LEN, [Field(5, LEN, [Field(1, LEN, b"\x01\x02\x00"), Field(1, VARINT, 4)])])])
    counts = assert_same(raw, Protocol.RW2)
    assert isinstance(counts, WriteCounts)
    assert counts.metadata == 4


def test_select_counter() -> None:
    assert select_counter("auto") is Counter.NATIVE
    assert select_counter("native") is Counter.NATIVE
    assert select_counter("upb") is Counter.UPB
    with pytest.raises(ValueError, match="unknown counter"):
        select_counter("fast")


def test_native_refused_when_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_write, "_walker", None)
    assert select_counter("auto") is Counter.UPB
    with pytest.raises(ValueError, match="not built"):
        select_counter("native")


def test_rls_settings_choose_the_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_settings([], env={}).counter is Counter.NATIVE
    assert parse_settings([], env={"REMOTE_WRITE_COUNTER": "upb"}).counter is Counter.UPB
    assert parse_settings(["--remote-write-counter", "native"], env={}).counter is Counter.NATIVE
    monkeypatch.setattr(remote_write, "_walker", None)
    with pytest.raises(SystemExit):
        parse_settings([], env={"REMOTE_WRITE_COUNTER": "native"})


def test_walker_accepts_any_buffer() -> None:
    raw = rw1_request(Shape(series=5))
    expected = count_decompressed(raw, Protocol.RW1, Counter.NATIVE)
    for view in (bytearray(raw), memoryview(raw)):
        assert count_decompressed(view, Protocol.RW1, Counter.NATIVE) == expected  # type: ignore[arg-type]
