"""The compiled walker and upb count every body alike: same WriteCounts, or the same error class.

WriteCounts includes the first series' labels (the HA tracker's), which each counter reads on its
own: the walker in C, upb with the SeriesLabels / SeriesLabelRefs views.

Bodies come from tests/wire_bodies.py (valid RW1/RW2 requests and their mutations, some aimed at
the first series); the cases below pin each wire-format rule the walker mirrors.
bench/counting_fuzz.py runs a million.
"""

from __future__ import annotations

import collections
import random
import struct
import tracemalloc

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
    # Mimir reads a Metadata's type, help_ref and unit_ref only as varints (MetricMetadataUnmarshalRW2).
    (
        "RW2 packed metadata types",
        encode([Field(5, LEN, [Field(5, LEN, [Field(1, LEN, b"\x01\x02\x00")])])]),
        Protocol.RW2,
        False,
    ),
    ("RW2 packed help ref", encode([Field(5, LEN, [Field(5, LEN, [Field(3, LEN, b"\x01")])])]), Protocol.RW2, False),
    ("RW2 unit ref as fixed64", encode([Field(5, LEN, [Field(5, LEN, [Field(4, I64, 1)])])]), Protocol.RW2, False),
    ("RW2 metadata type as fixed32", encode([Field(5, LEN, [Field(5, LEN, [Field(1, I32, 3)])])]), Protocol.RW2, False),
    ("RW2 metadata unknown field", encode([Field(5, LEN, [Field(5, LEN, [Field(2, I32, 3)])])]), Protocol.RW2, True),
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


COUNTER, GAUGE, HISTOGRAM, GAUGEHISTOGRAM, SUMMARY = 1, 2, 3, 4, 5


def rw2_with_metadata(*series: tuple[str | None, tuple[int, str, str] | None], symbols0: str = "") -> bytes:
    """A 2.0 request: per series its `__name__` (None: none) and its Metadata (type, help, unit)."""
    symbols = [symbols0]

    def ref(text: str) -> int:
        if text == "" and symbols0 == "":
            return 0
        if text not in symbols[1:]:
            symbols.append(text)
        return symbols.index(text, 1)

    fields = []
    for name, metadata in series:
        labels = [("job", "api")] + ([("__name__", name)] if name is not None else [])
        refs = b"".join(varint(ref(part)) for label in labels for part in label)
        body = [Field(1, LEN, refs), Field(2, LEN, SAMPLE)]
        if metadata is not None:
            kind, help_text, unit = metadata
            body.append(
                Field(5, LEN, [Field(1, VARINT, kind), Field(3, VARINT, ref(help_text)), Field(4, VARINT, ref(unit))])
            )
        fields.append(Field(5, LEN, body))
    return encode([Field(4, LEN, text.encode()) for text in symbols] + fields)


HELP = (HISTOGRAM, "Request latency.", "seconds")

# Mimir keeps one metadata entry per metric family of a 2.0 request: the family is the series'
# `__name__` without the suffix its type implies (normalizeMetricName), and a Metadata counts when
# its type, help or unit is set (MetricMetadataUnmarshalRW2 into a dedupingMetadataSet).
FAMILIES = [
    (
        "a histogram's buckets, sum and count: one family",
        [(f"rpc_seconds{suffix}", HELP) for suffix in ("_bucket", "_bucket", "_bucket", "_sum", "_count")],
        1,
    ),
    (
        "a summary's quantiles, sum and count: one family",
        [(f"q_seconds{suffix}", (SUMMARY, "Q.", "")) for suffix in ("", "", "_sum", "_count")],
        1,
    ),
    (
        "a gauge histogram's buckets, gcount and gsum: one family",
        [(f"g{suffix}", (GAUGEHISTOGRAM, "", "")) for suffix in ("_bucket", "_gcount", "_gsum")],
        1,
    ),
    ("_total is not cut from a counter", [("req_total", (COUNTER, "", "")), ("req", (COUNTER, "", ""))], 2),
    ("a suffix its type does not imply is kept", [("x_bucket", (GAUGE, "", "")), ("x", (GAUGE, "", ""))], 2),
    (
        "the same series name under two types: two families",
        [("x_count", (COUNTER, "", "")), ("x_count", (SUMMARY, "", ""))],
        2,
    ),
    ("one family with different help counts once", [("m", (GAUGE, "a", "")), ("m", (GAUGE, "b", ""))], 1),
    ("help only counts", [("m", (0, "Help.", ""))], 1),
    ("unit only counts", [("m", (0, "", "bytes"))], 1),
    ("no type, help or unit: nothing", [("m", (0, "", ""))], 0),
    ("a name that is only the suffix: no family", [("_count", (SUMMARY, "", ""))], 0),
    ("no __name__: no family", [(None, (GAUGE, "", ""))], 0),
    ("series without metadata count nothing", [("a", None), ("b", (GAUGE, "", "")), ("c", None)], 1),
    (
        "2,000 series of 50 names, each with its metadata",
        [(f"m{i % 50}", (COUNTER, "H.", "")) for i in range(2000)],
        50,
    ),
]


@pytest.mark.parametrize(("series", "families"), [f[1:] for f in FAMILIES], ids=[f[0] for f in FAMILIES])
def test_rw2_metadata_counts_one_item_per_metric_family(series, families: int) -> None:  # type: ignore[no-untyped-def]
    counts = assert_same(rw2_with_metadata(*series), Protocol.RW2)
    assert isinstance(counts, WriteCounts)
    assert counts.metadata == families


def test_rw2_metadata_reference_0_is_empty_whatever_symbols_0_holds() -> None:
    """Mimir's rw2PagedSymbols.get answers "" for reference 0 (the spec's first symbol)."""
    raw = rw2_with_metadata(("m", (0, "", "")), symbols0="not empty")
    counts = assert_same(raw, Protocol.RW2)
    assert isinstance(counts, WriteCounts) and counts.metadata == 0


def test_rw2_metadata_twice_in_a_series_and_the_last_type_wins() -> None:
    name_refs = varint(1) + varint(2)  # __name__ = rpc_seconds_count
    body = [
        Field(1, LEN, name_refs),
        Field(5, LEN, [Field(1, VARINT, COUNTER), Field(1, VARINT, HISTOGRAM)]),  # family rpc_seconds
        Field(5, LEN, [Field(1, VARINT, SUMMARY)]),  # family rpc_seconds again
    ]
    raw = encode(
        [Field(4, LEN, b""), Field(4, LEN, b"__name__"), Field(4, LEN, b"rpc_seconds_count"), Field(5, LEN, body)]
    )
    counts = assert_same(raw, Protocol.RW2)
    assert isinstance(counts, WriteCounts) and counts.metadata == 1


def symbols_and_series(symbols: list[bytes], *series: list[Field], symbols_first: bool = True) -> bytes:
    table = [Field(4, LEN, text) for text in symbols]
    rows = [Field(5, LEN, [*fields, Field(2, LEN, SAMPLE)]) for fields in series]
    return encode(table + rows if symbols_first else rows + table)


def refs(*values: int) -> Field:
    return Field(1, LEN, b"".join(varint(v) for v in values))


def metadata(kind: int, help_ref: int = 0, unit_ref: int = 0) -> Field:
    return Field(5, LEN, [Field(1, VARINT, kind), Field(3, VARINT, help_ref), Field(4, VARINT, unit_ref)])


# Bodies a builder with one symbol per text cannot make; each count is Mimir's (it reads the
# labels first in all of them).
TABLES = [
    (
        # Found in review: the upb twin took whichever `__name__` symbol its set gave first.
        "two __name__ symbols: the series' last __name__ label names it",
        symbols_and_series(
            [b"", b"__name__", b"a", b"__name__", b"b"],
            [refs(3, 4, 1, 2), metadata(COUNTER)],
            [refs(1, 2), metadata(COUNTER)],
        ),
        1,
    ),
    (
        "one text under two references: one family",
        symbols_and_series(
            [b"", b"__name__", b"m", b"m"], [refs(1, 2), metadata(GAUGE)], [refs(1, 3), metadata(GAUGE)]
        ),
        1,
    ),
    (
        "a help reference to an empty symbol is no help",
        symbols_and_series([b"", b"__name__", b"m", b""], [refs(1, 2), metadata(0, help_ref=3, unit_ref=3)]),
        0,
    ),
    (
        "a unit reference to a symbol is a unit",
        symbols_and_series([b"", b"__name__", b"m", b"bytes"], [refs(1, 2), metadata(0, unit_ref=3)]),
        1,
    ),
    (
        "references in several runs read as one list",
        symbols_and_series([b"", b"__name__", b"m_sum", b"job"], [refs(3, 3), refs(1, 2), metadata(SUMMARY)]),
        1,
    ),
    (
        # Mimir refuses it (symbols are read as they come); counted by the same rule here.
        "symbols after the series",
        symbols_and_series([b"", b"__name__", b"m"], [refs(1, 2), metadata(GAUGE)], symbols_first=False),
        1,
    ),
    (
        # The shapes review found slow (a long name and many Metadata): counted once, cheaply.
        "one long name, many metadata",
        symbols_and_series([b"", b"__name__", b"x" * 100_000], [refs(1, 2), *[metadata(COUNTER)] * 10_000]),
        1,
    ),
]


@pytest.mark.parametrize(("raw", "families"), [t[1:] for t in TABLES], ids=[t[0] for t in TABLES])
def test_rw2_metadata_families_with_any_symbols_table(raw: bytes, families: int) -> None:
    counts = assert_same(raw, Protocol.RW2)
    assert isinstance(counts, WriteCounts)
    assert counts.metadata == families


def test_rw2_metadata_with_refs_outside_the_symbols_counts_nothing() -> None:
    """Mimir refuses such a request (400, nothing charged); the edge counts no family for it."""
    raw = encode(
        [Field(4, LEN, b""), Field(5, LEN, [Field(1, LEN, b"\x01\x09"), Field(5, LEN, [Field(1, VARINT, 2)])])]
    )
    counts = assert_same(raw, Protocol.RW2)
    assert isinstance(counts, WriteCounts) and counts.metadata == 0


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


def test_native_reads_the_labels_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Otherwise the label comparisons here would compare upb's labels with themselves."""

    def parse_again(*args: object) -> object:
        raise AssertionError("the native counter parsed the labels with upb")

    for name in ("first_series_labels", "_first_series_labels_rw1", "_first_series_labels_rw2"):
        monkeypatch.setattr(remote_write, name, parse_again)
    shape = Shape(series=3)
    for build, protocol in ((rw1_request, Protocol.RW1), (rw2_request, Protocol.RW2)):
        counts = count_decompressed(build(shape), protocol, Counter.NATIVE)
        assert len(counts.first_series_labels) == shape.labels_per_series


def test_first_series_mutations() -> None:
    """Bodies mutated where the HA tracker looks; the tallies show the cases reach every outcome."""
    tally: collections.Counter[str] = collections.Counter()
    for seed in range(1500):
        number, raw = Generator(random.Random(seed)).first_series_body()
        result = assert_same(raw, Protocol.RW1 if number == 1 else Protocol.RW2)
        if isinstance(result, str):
            tally["refused"] += 1
        else:
            tally[f"RW{number} {'labels' if result.first_series_labels else 'no labels'}"] += 1
    assert len(tally) == 5 and min(tally.values()) > 100, tally


def label(*fields: Field) -> Field:
    return Field(1, LEN, list(fields))


NAME_A, VALUE_V = Field(1, LEN, b"a"), Field(2, LEN, b"v")


def rw2_body(refs: list[Field], symbols: list[bytes], symbols_first: bool = True) -> bytes:
    table = [Field(4, LEN, s) for s in symbols]
    series = [Field(5, LEN, [*refs, Field(2, LEN, SAMPLE)]), Field(5, LEN, [Field(1, LEN, b"\x00\x00")])]
    return encode(table + series if symbols_first else series + table)


def packed(*refs: int) -> Field:
    return Field(1, LEN, b"".join(varint(r) for r in refs))


# The first series' labels, as upb reads them; each case runs on both counters.
LABEL_RULES = [
    ("RW1 no series", encode([Field(3, LEN, [Field(1, VARINT, 1)])]), Protocol.RW1, ()),
    ("RW1 a series without labels", rw1_series(), Protocol.RW1, ()),
    (
        "RW1 only the first series",
        encode([Field(1, LEN, [label(NAME_A, VALUE_V)]), Field(1, LEN, [label(Field(1, LEN, b"b"))])]),
        Protocol.RW1,
        (("a", "v"),),
    ),
    (
        "RW1 wire order",
        rw1_series(label(VALUE_V, NAME_A), label(Field(1, LEN, b"0"))),
        Protocol.RW1,
        (("a", "v"), ("0", "")),
    ),
    ("RW1 empty label", rw1_series(label()), Protocol.RW1, (("", ""),)),
    ("RW1 second name wins", rw1_series(label(NAME_A, VALUE_V, Field(1, LEN, b"b"))), Protocol.RW1, (("b", "v"),)),
    ("RW1 second value wins", rw1_series(label(Field(2, LEN, b"x"), NAME_A, VALUE_V)), Protocol.RW1, (("a", "v"),)),
    ("RW1 name as a varint: skipped", rw1_series(label(NAME_A, Field(1, VARINT, 3))), Protocol.RW1, (("a", ""),)),
    ("RW1 value as fixed32: skipped", rw1_series(label(NAME_A, Field(2, I32, 3))), Protocol.RW1, (("a", ""),)),
    (
        "RW1 unknown fields in a label",
        rw1_series(label(Field(9, LEN, b"x"), NAME_A, Field(3, I64, 1), Field(7, SGROUP, []), VALUE_V)),
        Protocol.RW1,
        (("a", "v"),),
    ),
    ("RW1 groups 99 deep in a label", rw1_series(label(NAME_A, *nested_groups(99))), Protocol.RW1, (("a", ""),)),
    ("RW1 groups 100 deep in a label", rw1_series(label(NAME_A, *nested_groups(100))), Protocol.RW1, ()),
    ("RW1 field 0 in a label", rw1_series(label(NAME_A), label(Field(0, VARINT, 1))), Protocol.RW1, ()),
    ("RW1 end-group in a label", rw1_series(label(NAME_A, Field(1, EGROUP, 0))), Protocol.RW1, ()),
    ("RW1 name cut short", rw1_series(label(NAME_A), Field(1, LEN, b"\x0a\x05ab")), Protocol.RW1, ()),
    ("RW1 wire type 7 in a label", rw1_series(Field(1, LEN, b"\x0f")), Protocol.RW1, ()),
    (
        "RW1 label as a group: skipped",
        rw1_series(Field(1, SGROUP, [NAME_A]), label(VALUE_V)),
        Protocol.RW1,
        (("", "v"),),
    ),
    (
        "RW1 not UTF-8",
        rw1_series(label(Field(1, LEN, b"a\xff"), Field(2, LEN, b"\xc3"))),
        Protocol.RW1,
        (("a\ufffd", "\ufffd"),),
    ),
    ("RW2 no series", encode([Field(4, LEN, b"a")]), Protocol.RW2, ()),
    ("RW2 packed", rw2_body([packed(0, 1, 1, 0)], [b"a", b"v"]), Protocol.RW2, (("a", "v"), ("v", "a"))),
    ("RW2 symbols after the series", rw2_body([packed(0, 1)], [b"a", b"v"], False), Protocol.RW2, (("a", "v"),)),
    (
        "RW2 unpacked and in several runs",
        rw2_body([Field(1, VARINT, 2), packed(1), Field(2, LEN, SAMPLE), packed(0, 2)], [b"a", b"v", b"x"]),
        Protocol.RW2,
        (("x", "v"), ("a", "x")),
    ),
    (
        "RW2 a 33-bit ref keeps its low 32 bits",
        rw2_body([packed(0, (1 << 32) + 1)], [b"a", b"v"]),
        Protocol.RW2,
        (("a", "v"),),
    ),
    ("RW2 empty symbols", rw2_body([packed(0, 1)], [b"", b""]), Protocol.RW2, (("", ""),)),
    ("RW2 ref just past the table", rw2_body([packed(0, 2)], [b"a", b"v"]), Protocol.RW2, ()),
    ("RW2 ref 2^32 - 1", rw2_body([packed(0, 2**32 - 1)], [b"a", b"v"]), Protocol.RW2, ()),
    ("RW2 no symbols", rw2_body([packed(0, 0)], []), Protocol.RW2, ()),
    ("RW2 odd refs", rw2_body([packed(0, 1, 0)], [b"a", b"v"]), Protocol.RW2, ()),
    ("RW2 no refs", rw2_body([], [b"a", b"v"]), Protocol.RW2, ()),
    ("RW2 not UTF-8", rw2_body([packed(0, 1)], [b"\xff", b"v"]), Protocol.RW2, (("\ufffd", "v"),)),
]


@pytest.mark.parametrize(("raw", "protocol", "labels"), [r[1:] for r in LABEL_RULES], ids=[r[0] for r in LABEL_RULES])
def test_first_series_labels(raw: bytes, protocol: Protocol, labels: tuple[tuple[str, str], ...]) -> None:
    counts = assert_same(raw, protocol)
    assert isinstance(counts, WriteCounts)
    assert counts.first_series_labels == labels


def test_far_references_need_no_table_of_symbols() -> None:
    """The walker resolves references in one scan of the symbols, with memory per reference: a
    table of every symbol up to the highest reference would be 16 bytes per symbol here (32 MB)."""
    symbols = 2_000_000
    raw = b"\x22\x00" * (symbols - 1) + b"\x22\x01v" + encode([Field(5, LEN, [packed(0, symbols - 1)])])
    tracemalloc.start()
    try:
        counts = count_decompressed(raw, Protocol.RW2, Counter.NATIVE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counts.first_series_labels == (("", "v"),)
    assert peak < 1 << 20, peak


SUFFIXES = {
    HISTOGRAM: ("_bucket", "_count", "_sum"),
    GAUGEHISTOGRAM: ("_bucket", "_gcount", "_gsum"),
    SUMMARY: ("_count", "_sum"),
}


def expected_families(series: list[tuple[str | None, tuple[int, str, str] | None]]) -> int:
    """The rule as Mimir's source states it, on the request as built (not as parsed)."""
    families = set()
    for name, metadata in series:
        if name is None or metadata is None or metadata == (0, "", ""):
            continue
        kind = metadata[0]
        family = next((name[: -len(s)] for s in SUFFIXES.get(kind, ()) if name.endswith(s)), name)
        if family:
            families.add(family)
    return len(families)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    series=st.lists(
        st.tuples(
            st.one_of(
                st.none(),
                st.sampled_from(["m", "m_bucket", "m_count", "m_sum", "m_gcount", "m_gsum", "_sum", "n_total"]),
            ),
            st.one_of(st.none(), st.tuples(st.integers(0, 7), st.sampled_from(["", "h"]), st.sampled_from(["", "u"]))),
        ),
        max_size=30,
    )
)
def test_rw2_metadata_families_match_the_rule(series) -> None:  # type: ignore[no-untyped-def]
    counts = assert_same(rw2_with_metadata(*series), Protocol.RW2)
    assert isinstance(counts, WriteCounts)
    assert counts.metadata == expected_families(series)
