"""Random remote_write bodies at the wire level, valid and broken, for the counting differential.

A body is built as a tree of fields (number, wire type, value) so that a mutation can change one
field's wire type, nest groups, pack or unpack a repeated field, or pad a varint, and only then
serialised; byte-level mutations (truncate, flip, insert, huge lengths) follow. Everything is
drawn from one `random.Random`, so hypothesis (`st.randoms`) and the million-case benchmark
(`bench/counting_fuzz.py`, seeded) share the generator.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5


@dataclass
class Field:
    number: int
    wire_type: int
    #: int for VARINT/I64/I32, bytes for a raw LEN payload, list[Field] for a sub-message (LEN)
    #: or a group's content (SGROUP).
    value: int | bytes | list[Field]
    #: Extra (valid, redundant) bytes on the tag and value varints.
    tag_pad: int = 0
    value_pad: int = 0


def varint(value: int, pad: int = 0) -> bytes:
    """`value` as a varint, with `pad` redundant continuation bytes (still ≤ 10 bytes is valid)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value or pad:
            out.append(byte | 0x80)
            if not value:
                pad -= 1
                while pad > 0:
                    out.append(0x80)
                    pad -= 1
                out.append(0)
                return bytes(out)
        else:
            out.append(byte)
            return bytes(out)


def encode(fields: list[Field]) -> bytes:
    out = bytearray()
    for f in fields:
        out += varint(f.number << 3 | f.wire_type, f.tag_pad)
        value = f.value
        if f.wire_type == VARINT:
            assert isinstance(value, int)
            out += varint(value, f.value_pad)
        elif f.wire_type == I64:
            assert isinstance(value, int)
            out += struct.pack("<Q", value & (1 << 64) - 1)
        elif f.wire_type == I32:
            assert isinstance(value, int)
            out += struct.pack("<I", value & 0xFFFFFFFF)
        elif f.wire_type == LEN:
            payload = value if isinstance(value, bytes) else encode(value)  # type: ignore[arg-type]
            out += varint(len(payload), f.value_pad) + payload
        elif f.wire_type == SGROUP:
            assert isinstance(value, list)
            out += encode(value) + varint(f.number << 3 | EGROUP)
        else:  # a stray end-group tag or wire type 6/7: the tag alone
            pass
    return bytes(out)


class Generator:
    """Draws RW1/RW2 requests as field trees; `body()` returns (protocol 1|2, bytes)."""

    def __init__(self, rng: random.Random):
        self.r = rng

    # --- small values -----------------------------------------------------------------------------
    def _int(self) -> int:
        r = self.r
        return r.choice((0, 1, r.randrange(128), r.randrange(1 << 14), r.randrange(1 << 35), r.getrandbits(64)))

    def _text(self) -> bytes:
        r = self.r
        n = r.choice((0, 1, 3, 8, 20, r.randrange(200)))
        if r.random() < 0.05:
            return bytes(r.getrandbits(8) for _ in range(n))  # not UTF-8: must not matter
        return bytes(r.choice(b"abcxyz_019") for _ in range(n))

    def _double(self) -> int:
        return struct.unpack("<Q", struct.pack("<d", self.r.uniform(-1e9, 1e9)))[0]  # type: ignore[no-any-return]

    def _repeated_varint(self, number: int, n: int) -> list[Field]:
        values = [self._int() for _ in range(n)]
        if n and self.r.random() < 0.6:
            return [Field(number, LEN, b"".join(varint(v) for v in values))]
        return [Field(number, VARINT, v) for v in values]

    def _repeated_double(self, number: int, n: int) -> list[Field]:
        values = [self._double() for _ in range(n)]
        if n and self.r.random() < 0.6:
            return [Field(number, LEN, b"".join(struct.pack("<Q", v) for v in values))]
        return [Field(number, I64, v) for v in values]

    def _unknown(self, depth: int = 0) -> Field:
        r = self.r
        # Inside a group, field number 0 is legal for upb (its group skipper does not check it).
        number = r.choice((7, 15, 16, 99, 536870911, r.randrange(1, 40), 0 if depth else 9))
        wire_type = r.choice((VARINT, I64, LEN, I32, SGROUP) if depth < 3 else (VARINT, I64, LEN, I32))
        if wire_type == LEN:
            return Field(number, LEN, self._text())
        if wire_type == SGROUP:
            return Field(number, SGROUP, [self._unknown(depth + 1) for _ in range(r.randrange(3))])
        return Field(number, wire_type, self._int())

    def _sprinkle(self, fields: list[Field], p: float = 0.1) -> list[Field]:
        """Add unknown fields sometimes, and sometimes shuffle the order (both are legal)."""
        r = self.r
        if r.random() < p:
            fields = fields + [self._unknown() for _ in range(r.randrange(1, 3))]
        if r.random() < p:
            r.shuffle(fields)
        return fields

    # --- messages -----------------------------------------------------------------------------------
    def _sample(self) -> list[Field]:
        return self._sprinkle([Field(1, I64, self._double()), Field(2, VARINT, self._int())])

    def _spans(self, number: int) -> list[Field]:
        return [
            Field(number, LEN, [Field(1, VARINT, self._int()), Field(2, VARINT, self.r.randrange(10))])
            for _ in range(self.r.randrange(3))
        ]

    def _histogram(self) -> list[Field]:
        r = self.r
        fields = [
            Field(r.choice((1, 2)), r.choice((VARINT, I64)), self._int()),
            Field(3, I64, self._double()),
            Field(4, VARINT, r.randrange(16)),
            Field(5, I64, self._double()),
            Field(r.choice((6, 7)), VARINT, r.randrange(100)),
            *self._spans(8),
            *self._repeated_varint(9, r.randrange(5)),
            *self._repeated_double(10, r.randrange(3)),
            *self._spans(11),
            *self._repeated_varint(12, r.randrange(5)),
            *self._repeated_double(13, r.randrange(3)),
            Field(14, VARINT, r.randrange(4)),
            Field(15, VARINT, self._int()),
            *self._repeated_double(16, r.randrange(3)),
        ]
        return self._sprinkle([f for f in fields if r.random() < 0.8])

    def _label(self) -> list[Field]:
        return [Field(1, LEN, self._text()), Field(2, LEN, self._text())]

    def _rw1_series(self) -> list[Field]:
        r = self.r
        fields = [Field(1, LEN, self._label()) for _ in range(r.choice((0, 1, 8, r.randrange(31))))]
        fields += [Field(2, LEN, self._sample()) for _ in range(r.choice((0, 1, 1, 2, r.randrange(5))))]
        fields += [
            Field(3, LEN, [*(Field(1, LEN, self._label()) for _ in range(r.randrange(3))), *self._sample()[:2]])
            for _ in range(r.choice((0, 0, 1, r.randrange(3))))
        ]
        fields += [Field(4, LEN, self._histogram()) for _ in range(r.choice((0, 0, 1, r.randrange(3))))]
        return self._sprinkle(fields)

    def _rw1(self) -> list[Field]:
        r = self.r
        fields = [Field(1, LEN, self._rw1_series()) for _ in range(r.choice((0, 1, 3, r.randrange(20))))]
        for _ in range(r.choice((0, 0, 1, r.randrange(4)))):
            meta = [Field(1, VARINT, r.randrange(8)), Field(2, LEN, self._text()), Field(4, LEN, self._text())]
            fields.append(Field(3, LEN, self._sprinkle([*meta, Field(5, LEN, self._text())])))
        return self._sprinkle(fields)

    def _rw2_series(self, symbols: int) -> list[Field]:
        r = self.r

        def ref() -> int:
            # Out-of-range refs are Mimir's to refuse, not the counter's.
            return r.randrange(symbols) if r.random() < 0.95 else symbols + r.randrange(100)

        refs = [ref() for _ in range(2 * r.choice((1, 4, r.randrange(16))))]
        fields = (
            [Field(1, LEN, b"".join(varint(v) for v in refs))]
            if r.random() < 0.8
            else [Field(1, VARINT, v) for v in refs]
        )
        fields += [Field(2, LEN, self._sample()) for _ in range(r.choice((0, 1, 1, r.randrange(4))))]
        fields += [Field(3, LEN, self._histogram()) for _ in range(r.choice((0, 0, 1, r.randrange(3))))]
        for _ in range(r.choice((0, 0, 1, r.randrange(3)))):
            exemplar = [*self._repeated_varint(1, r.randrange(4)), *self._sample()]
            fields.append(Field(4, LEN, self._sprinkle(exemplar)))
        for _ in range(r.choice((0, 1, 1, r.randrange(3)))):
            # Mostly what senders write (one varint type: the types whose names lose a suffix
            # among them); sometimes a packed or repeated type, which Mimir refuses or takes the last of.
            if r.random() < 0.8:
                types = [Field(1, VARINT, r.choice((0, 1, 2, 3, 4, 5, 6, 7, self._int())))]
            else:
                types = self._repeated_varint(1, r.choice((0, 1, 2)))
            meta = [*types, Field(3, VARINT, ref()), Field(4, VARINT, ref())]
            fields.append(Field(5, LEN, self._sprinkle(meta)))
        if r.random() < 0.3:
            fields.append(Field(6, VARINT, self._int()))
        return self._sprinkle(fields)

    def _rw2(self) -> list[Field]:
        r = self.r
        # Metric names, some with the suffixes a metadata type cuts, so that series share families.
        names = (b"__name__", b"m", b"m_bucket", b"m_count", b"m_sum", b"m_gcount", b"m_gsum", b"_count", b"m_total")
        symbols = [
            Field(4, LEN, r.choice(names) if r.random() < 0.4 else self._text())
            for _ in range(r.choice((0, 1, 5, r.randrange(40))))
        ]
        series = [Field(5, LEN, self._rw2_series(len(symbols) or 1)) for _ in range(r.choice((0, 1, r.randrange(20))))]
        return self._sprinkle(symbols + series)

    # --- mutations ----------------------------------------------------------------------------------
    def _all_fields(self, fields: list[Field], out: list[tuple[list[Field], int]], depth: int = 0) -> None:
        for i, f in enumerate(fields):
            out.append((fields, i))
            if isinstance(f.value, list) and depth < 6:
                self._all_fields(f.value, out, depth + 1)

    def _mutate_tree(self, fields: list[Field]) -> None:
        r = self.r
        spots: list[tuple[list[Field], int]] = []
        self._all_fields(fields, spots)
        if not spots:
            fields.append(self._unknown())
            return
        parent, i = r.choice(spots)
        f = parent[i]
        kind = r.randrange(9)
        if kind == 0:  # wrong wire type, payload kept where it can be
            new_type = r.choice([w for w in (VARINT, I64, LEN, SGROUP, I32) if w != f.wire_type])
            if new_type in (VARINT, I64, I32):
                parent[i] = Field(f.number, new_type, self._int())
            elif new_type == SGROUP:
                parent[i] = Field(f.number, SGROUP, f.value if isinstance(f.value, list) else [])
            else:
                parent[i] = Field(f.number, LEN, f.value if not isinstance(f.value, int) else self._text())
        elif kind == 1:  # a stray end-group tag, wire type 6/7 or field number 0
            parent.insert(i, Field(r.choice((0, f.number, 1)), r.choice((EGROUP, 6, 7, VARINT)), 0))
        elif kind == 2:  # redundant (still valid, or over 10 bytes) varint padding
            f.tag_pad = r.choice((1, 4, 5, 9))
            f.value_pad = r.choice((0, 1, 8, 9, 10))
        elif kind == 3:  # nested unknown groups, around the depth limit
            depth = r.choice((1, 2, 30, 95, 96, 97, 98, 99, 100, 101))
            group: list[Field] = []
            for _ in range(depth):
                group = [Field(r.choice((7, 200)), SGROUP, group)]
            parent.insert(i, group[0])
        elif kind == 4:  # drop a field
            del parent[i]
        elif kind == 5:  # duplicate a field
            parent.insert(i, f)
        elif kind == 6:  # a field of another number
            f.number = r.choice((0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 16, 17, 1 << 28, 536870911))
        elif kind == 7:  # a LEN value that is not what the schema says
            parent[i] = Field(f.number, LEN, bytes(r.getrandbits(8) for _ in range(r.randrange(12))))
        else:  # packed bodies with a partial element
            parent[i] = Field(f.number, LEN, varint(self._int()) + r.choice((b"\x80", b"\xff" * 3, b"\x01" * 7)))

    # --- the first series (where the HA tracker reads its labels) --------------------------------
    def _nested_groups(self, depth: int) -> Field:
        group: list[Field] = []
        for _ in range(depth):
            group = [Field(self.r.choice((7, 200)), SGROUP, group)]
        return group[0]

    def _mutate_label(self, label: list[Field]) -> None:
        r = self.r
        at = r.randrange(len(label) + 1)
        kind = r.randrange(8)
        if kind == 0:  # a second name or value: protobuf keeps the last
            label.insert(at, Field(r.choice((1, 2)), LEN, self._text()))
        elif kind == 1:  # unknown fields, skipped
            label.insert(at, self._unknown())
        elif kind == 2:  # name or value with another wire type: unknown to the parser, skipped
            label.insert(at, Field(r.choice((1, 2)), r.choice((VARINT, I64, I32)), self._int()))
        elif kind == 3:  # groups around the depth limit of a label parsed on its own (99 fit)
            label.insert(at, self._nested_groups(r.choice((98, 99, 100))))
        elif kind == 4:  # empty name and/or value, or neither field at all
            label[:] = [Field(f.number, LEN, b"") if f.wire_type == LEN else f for f in label if r.random() < 0.6]
        elif kind == 5:  # not UTF-8
            label.insert(at, Field(r.choice((1, 2)), LEN, bytes(r.getrandbits(8) for _ in range(r.randrange(1, 6)))))
        elif kind == 6:  # an end-group tag inside the label: it does not parse
            label.insert(at, Field(r.choice((1, 9)), EGROUP, 0))
        else:  # field number 0: it does not parse
            label.insert(at, Field(0, VARINT, 0) if r.random() < 0.5 else Field(0, LEN, b""))

    def _mutate_rw1_first_series(self, series: list[Field]) -> None:
        r = self.r
        labels = [f.value for f in series if f.number == 1 and f.wire_type == LEN and isinstance(f.value, list)]
        at = r.randrange(len(series) + 1)
        roll = r.random()
        if not labels or roll < 0.1:
            series.insert(at, Field(1, LEN, self._label()))
        elif roll < 0.2:  # a label as a group or a varint: an unknown field to the parser, skipped
            series.insert(at, Field(1, SGROUP, [self._unknown()]) if r.random() < 0.5 else Field(1, VARINT, 1))
        elif roll < 0.35:  # bytes that are not a Label message (a name cut short, a bare tag, noise)
            raw = r.choice(
                (b"\x0a\x05ab", b"\x0a", b"\x12\x80", bytes(r.getrandbits(8) for _ in range(r.randrange(8))))
            )
            series.insert(at, Field(1, LEN, raw))
        else:
            self._mutate_label(r.choice(labels))

    def _refs(self, refs: list[int]) -> list[Field]:
        """`refs` as one packed run, unpacked varints, or a mix of several runs (all legal)."""
        r = self.r
        how = r.randrange(3)
        if how == 0 or not refs:
            return [Field(1, LEN, b"".join(varint(v) for v in refs))] if refs or r.random() < 0.5 else []
        if how == 1:
            return [Field(1, VARINT, v) for v in refs]
        out: list[Field] = []
        i = 0
        while i < len(refs):
            n = r.randrange(1, 4)
            if r.random() < 0.5:
                out.append(Field(1, LEN, b"".join(varint(v) for v in refs[i : i + n])))
            else:
                out += [Field(1, VARINT, v) for v in refs[i : i + n]]
            i += n
        return out

    def _mutate_rw2_first_series(self, request: list[Field], series: list[Field]) -> None:
        r = self.r
        symbols = sum(1 for f in request if f.number == 4 and f.wire_type == LEN)
        refs = [r.randrange(symbols) for _ in range(2 * r.choice((1, 2, 4, 8)))] if symbols else []
        kind = r.randrange(9)
        if kind == 0:  # a reference just or far outside the symbols table
            refs = refs or [0, 0]
            refs[r.randrange(len(refs))] = symbols + r.choice((0, 1, 1000))
        elif kind == 1 and refs:  # an odd number of references
            del refs[r.randrange(len(refs))]
        elif kind == 2 and refs:  # a reference of 33+ bits: upb keeps its low 32 bits
            refs[r.randrange(len(refs))] += r.choice((1 << 32, 1 << 40))
        elif kind == 3:  # symbols after (or around) the series: any order is legal
            request.sort(key=lambda f: 0 if f.number != 4 else r.choice((0, 1)))
        elif kind == 4:  # some symbols empty: empty names and values
            for f in request:
                if f.number == 4 and f.wire_type == LEN and r.random() < 0.5:
                    f.value = b""
        elif kind == 5:  # no references at all
            refs = []
        elif kind == 6:  # a packed run cut inside a varint: the body is refused
            series.append(Field(1, LEN, b"\x80"))
            return
        elif kind == 7:  # references as fixed64: refused as a known field with the wrong wire type
            series.append(Field(1, I64, 0))
            return
        # kind 8: the same valid references, packed another way
        series[:] = [f for f in series if f.number != 1]
        at = r.randrange(len(series) + 1)
        series[at:at] = self._refs(refs)

    def first_series_body(self) -> tuple[int, bytes]:
        """A body whose first series (labels, refs, and for RW2 the symbols table) was mutated, now and
        then with other mutations too: the walker's HA labels against upb's."""
        r = self.r
        protocol = r.choice((1, 2))
        fields = self._rw1() if protocol == 1 else self._rw2()
        number = 1 if protocol == 1 else 5
        first = next((f for f in fields if f.number == number and f.wire_type == LEN), None)
        if first is None or not isinstance(first.value, list):
            first = Field(number, LEN, self._rw1_series() if protocol == 1 else self._rw2_series(1))
            fields.insert(r.randrange(len(fields) + 1), first)
        for _ in range(r.choice((1, 1, 2, 3))):
            if protocol == 1:
                self._mutate_rw1_first_series(first.value)  # type: ignore[arg-type]
            else:
                self._mutate_rw2_first_series(fields, first.value)  # type: ignore[arg-type]
        if r.random() < 0.1:
            self._mutate_tree(fields)
        return protocol, encode(fields)

    def _mutate_bytes(self, raw: bytes) -> bytes:
        r = self.r
        data = bytearray(raw)
        kind = r.randrange(6)
        if kind == 0 and data:
            return bytes(data[: r.randrange(len(data))])  # truncated
        if kind == 1 and data:
            for _ in range(r.randrange(1, 4)):
                data[r.randrange(len(data))] ^= 1 << r.randrange(8)
            return bytes(data)
        if kind == 2:
            at = r.randrange(len(data) + 1)
            blob = r.choice((b"\xff" * 11, b"\x80" * 10 + b"\x01", bytes(r.getrandbits(8) for _ in range(4))))
            return bytes(data[:at] + blob + data[at:])
        if kind == 3:  # a huge declared length
            at = r.randrange(len(data) + 1)
            huge = r.choice((1 << 31, (1 << 31) - 1, (1 << 31) - 2, 1 << 40, len(data) + 1))
            return bytes(data[:at] + varint(r.choice((1, 2, 4, 5, 7)) << 3 | LEN) + varint(huge) + data[at:])
        if kind == 4 and data:
            del data[r.randrange(len(data))]
            return bytes(data)
        return bytes(data)

    def body(self) -> tuple[int, bytes]:
        """One body: valid about a third of the time, else mutated in the tree and/or the bytes; one in
        seven aimed at the first series (`first_series_body`)."""
        r = self.r
        if r.random() < 0.15:
            return self.first_series_body()
        protocol = r.choice((1, 2))
        fields = self._rw1() if protocol == 1 else self._rw2()
        roll = r.random()
        if roll < 0.35:
            return protocol, encode(fields)
        if roll < 0.75:
            for _ in range(r.choice((1, 1, 2, 3))):
                self._mutate_tree(fields)
            return protocol, encode(fields)
        raw = encode(fields)
        if r.random() < 0.3:
            self._mutate_tree(fields)
            raw = encode(fields)
        return protocol, self._mutate_bytes(raw)
