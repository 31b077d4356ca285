"""20,000 generated hostile OTLP bodies through the real Check path of a real `mimir-rls` process on
real Redis, half over the HTTP ext_authz transport and half over the gRPC Check: wrong wire types,
truncated and corrupted bodies, deep nesting, huge declared lengths, a compression bomb for every
encoding Mimir accepts (gzip, zstd, lz4), invalid JSON, wrong headers, and valid requests among
them. Every answer is 400, 413 or 415, or a decision on the limits for a body that was counted;
every bomb is 413; the process never crashes and its resident memory stays flat.

The generator is seeded: a failure names the body's index, and the same run reproduces it.
"""

from __future__ import annotations

import gzip
import http.client
import random
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import cramjam
import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from mimir_edge.contract import CHECK_PREFIX, DECISION_HEADER, ITEMS_HEADER, OTLP_PATH
from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess

from tests.integration.test_hostile_input import nested, varint
from tests.integration.test_otlp_charging import REQUESTS
from tests.stack import Stack, set_limits
from tests.unit.test_otlp import otlp_json

BODIES = 20_000
#: Bodies before the first memory reading: every kind has been seen many times by then, so the
#: allocator has its working set (the bombs' 1 MiB buffers included) and imports are done.
WARM_UP = 2_000
#: The RLS's MAX_REQUEST_BYTES here: small, so each bomb costs little CPU to refuse; the limit is
#: the same code path whatever its value.
MAX_BYTES = 1 << 20
#: "Flat": the RLS's resident memory after the last body is within this of what it was after the
#: warm-up. Requests are sent one at a time, so at most one body (1 MiB compressed) and one
#: decompression buffer (MAX_BYTES + 1) are alive at once; what the allocator keeps between
#: requests does not grow with their number. A leak of 1 KiB per body would add 17.6 MiB over
#: the 18,000 measured bodies and fail; 16 MiB leaves room for allocator fragmentation.
RSS_GROWTH_BOUND = 16 << 20
TENANT = "hostile-otlp"
PROTOBUF, JSON = "application/x-protobuf", "application/json"

VALID = [req.SerializeToString() for req in REQUESTS.values()]
VALID_JSON = [otlp_json(req) for req in REQUESTS.values()]

Body = tuple[bytes, dict[str, str], str]  # body, headers, kind


def _zstd_declaring(size: int) -> bytes:
    """A zstd frame whose header declares `size` bytes of content over a tiny real payload."""
    frame = bytes(cramjam.zstd.compress(b"x" * 64))
    # Frame header: magic, descriptor. Rewrite the descriptor to a 8-byte Frame_Content_Size
    # with Single_Segment set, then the declared size; keep the original blocks.
    descriptor = frame[4]
    fcs_flag, single = descriptor >> 6, (descriptor >> 5) & 1
    window = 0 if single else 1
    fcs_bytes = (1, 2, 4, 8)[fcs_flag] if (fcs_flag or single) else 0
    blocks = frame[5 + window + fcs_bytes :]
    return frame[:4] + bytes([0xE0]) + struct.pack("<Q", size) + blocks


def _bombs() -> dict[str, list[bytes]]:
    """Per encoding: bodies far smaller than MAX_BYTES that decompress to far more."""
    zeros = b"\0" * (16 * MAX_BYTES)
    protobuf_zeros = b"\x0a" + varint(16 * MAX_BYTES) + zeros  # a plausible first field, then zeros
    member = gzip.compress(b"\0" * (MAX_BYTES // 2))
    return {
        "gzip": [gzip.compress(zeros), gzip.compress(protobuf_zeros), member * 3],  # 3 members: 1.5 MiB
        "zstd": [bytes(cramjam.zstd.compress(zeros)), bytes(cramjam.zstd.compress(protobuf_zeros))],
        "lz4": [bytes(cramjam.lz4.compress(zeros)), bytes(cramjam.lz4.compress(protobuf_zeros))],
    }


BOMBS = _bombs()


def compressed(raw: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(raw)
    if encoding == "zstd":
        return bytes(cramjam.zstd.compress(raw))
    if encoding == "lz4":
        return bytes(cramjam.lz4.compress(raw))
    return raw


def wrong_wire_type(rng: random.Random, raw: bytes) -> bytes:
    """The request's first field (resource_metrics, wire type 2) re-tagged with another wire type,
    or a nested field's tag so changed: the bytes that follow are read as the wrong kind."""
    out = bytearray(raw)
    positions = [i for i, b in enumerate(out[:200]) if b in (0x0A, 0x12, 0x1A)]
    index = 0 if rng.random() < 0.4 else rng.choice(positions)
    out[index] = (out[index] & ~0x07) | rng.choice((0, 1, 3, 4, 5))
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


#: Real metrics for a resource: its attributes are read (target_info) only when it has some.
SCOPE_METRICS = next(iter(REQUESTS.values())).resource_metrics[0].scope_metrics[0].SerializeToString()


def deep_protobuf(rng: random.Random, depth: int) -> bytes:
    """A resource attribute whose value nests `depth` array values (AnyValue.array_value →
    ArrayValue.values → AnyValue ...) beside real metrics, or bare field 1 nested `depth` times."""
    if rng.random() < 0.2:
        return b"\x0a" + varint(len(n := nested(depth))) + n
    value = _field(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        value = _field(5, _field(1, value))
    attribute = _field(1, b"k") + _field(2, value)
    service = _field(1, b"service.name") + _field(2, _field(1, b"checkout"))
    resource = _field(1, service) + _field(1, attribute)
    return _field(1, _field(1, resource) + _field(2, SCOPE_METRICS))


def deep_json(rng: random.Random, depth: int) -> bytes:
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    value = b'{"stringValue":"x"}'
    for _ in range(depth):
        value = b'{"kvlistValue":{"values":[{"key":"k","value":' + value + b"}]}}"
    return b'{"resourceMetrics":[{"resource":{"attributes":[{"key":"k","value":' + value + b"}]}}]}"


def invalid_json(rng: random.Random) -> bytes:
    valid = rng.choice(VALID_JSON)
    choice = rng.randrange(7)
    if choice == 0:
        return valid[: rng.randrange(len(valid))]
    if choice == 1:  # bytes flipped: broken syntax, or a wrong type where the schema wants another
        raw = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            raw[rng.randrange(len(raw))] = rng.choice(b'{}[]":,0aZ\\\xff')
        return bytes(raw)
    if choice == 2:
        return rng.randbytes(rng.randrange(1, 256))
    if choice == 3:  # wrong types and absurd numbers in the right places
        return rng.choice(
            (
                b'{"resourceMetrics":{}}',
                b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":'
                b'[{"timeUnixNano":"1e999","asDouble":"nan?"}]}}]}]}]}',
                b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"aggregationTemporality":"x"}}]}]}]}',
                b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"histogram":{"dataPoints":'
                b'[{"bucketCounts":["18446744073709551616"]}]}}]}]}]}',
                b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":'
                b'[{"exemplars":[{"traceId":"zz"}]}]}}]}]}]}',
            )
        )
    if choice == 4:
        return b'"' + b"\\u00" * rng.randrange(1, 50) + b'"'
    if choice == 5:
        return valid.decode().encode("utf-16")
    return b""


def generate(rng: random.Random) -> Body:
    kind = rng.randrange(11)
    headers = {"content-type": PROTOBUF}
    valid = rng.choice(VALID)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 512)), headers, "random bytes"
    if kind == 1:
        changed = bytearray(valid)
        for _ in range(rng.randrange(1, 10)):
            changed[rng.randrange(len(changed))] = rng.randrange(256)
        return bytes(changed), headers, "flipped bytes"
    if kind == 2:  # truncated, plain or compressed
        encoding = rng.choice(("", "gzip", "zstd", "lz4"))
        body = compressed(valid, encoding)
        if encoding:
            headers["content-encoding"] = encoding
        return body[: rng.randrange(len(body))], headers, "truncated"
    if kind == 3:
        return wrong_wire_type(rng, valid), headers, "wrong wire type"
    if kind == 4:
        if rng.random() < 0.5:
            return deep_protobuf(rng, rng.randrange(5, 2000)), headers, "deep protobuf"
        return deep_json(rng, rng.randrange(50, 3000)), {"content-type": JSON}, "deep json"
    if kind == 5:  # a huge declared length, at the top or inside a packed field
        huge = varint(rng.choice((2**31, 2**28, 10**9, 2**63, MAX_BYTES + 1)))
        if rng.random() < 0.5:
            return b"\x0a" + huge + rng.randbytes(16), headers, "huge length"
        point = b"\x32" + huge + rng.randbytes(8)  # HistogramDataPoint.bucket_counts, packed
        metric = b"\x4a" + varint(len(hist := b"\x0a" + varint(len(point)) + point)) + hist
        scope = b"\x12" + varint(len(metric)) + metric
        return b"\x0a" + varint(len(rm := b"\x12" + varint(len(scope)) + scope)) + rm, headers, "huge length"
    if kind == 6:  # a compression bomb for every encoding
        encoding = rng.choice(("gzip", "zstd", "lz4"))
        headers["content-encoding"] = encoding
        return rng.choice(BOMBS[encoding]), headers, f"bomb {encoding}"
    if kind == 7:  # a lying or corrupt compressed body
        encoding = rng.choice(("gzip", "zstd", "lz4"))
        headers["content-encoding"] = encoding
        choice = rng.randrange(3)
        if choice == 0:
            return rng.randbytes(rng.randrange(1, 512)), headers, "corrupt compressed"
        if choice == 1 and encoding == "zstd":
            return _zstd_declaring(rng.choice((2**40, MAX_BYTES + 1, 2**63))), headers, "lying zstd size"
        flipped = bytearray(compressed(valid, encoding))
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return bytes(flipped), headers, "corrupt compressed"
    if kind == 8:
        return invalid_json(rng), {"content-type": JSON}, "invalid json"
    if kind == 9:  # what Mimir refuses by its headers alone
        key, value = rng.choice(
            (
                ("content-type", "application/json; charset=utf-8"),
                ("content-type", "text/plain"),
                ("content-type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"),
                ("content-encoding", "snappy"),
                ("content-encoding", "deflate"),
                ("content-encoding", "GZIP"),
            )
        )
        headers[key] = value
        return valid, headers, "refused by headers"
    # Valid writes among them, in every format and encoding: they must still be counted.
    fmt = rng.choice((PROTOBUF, JSON))
    raw = valid if fmt == PROTOBUF else VALID_JSON[VALID.index(valid)]
    encoding = rng.choice(("", "gzip", "zstd", "lz4"))
    headers = {"content-type": fmt}
    if encoding:
        headers["content-encoding"] = encoding
    return compressed(raw, encoding), headers, "valid"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.fixture(scope="module")
def rls(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[RlsProcess]:
    stack = Stack(tmp_path_factory.mktemp("hostile-otlp"))
    # FAILURE_MODE_ALLOW=false: an internal error (the last line of defence) answers 503, which
    # this test refuses, instead of admitting the body uncounted.
    yield stack.add_rls(
        {"REDIS_URL": redis_server.url, "MAX_REQUEST_BYTES": str(MAX_BYTES), "FAILURE_MODE_ALLOW": "false"}
    )
    stack.close()


def test_hostile_otlp_bodies_get_client_errors_and_the_rls_stays_flat(
    rls: RlsProcess, redis_server: RedisServer
) -> None:
    # A budget no valid body exhausts: a 429 would be a fine answer too, but this way a valid body
    # that is not admitted is a failure to count it.
    set_limits(redis_server.url, TENANT, TenantLimits(ingestion_rate=10**9, ingestion_burst_size=10**9))
    assert rls.process is not None
    pid = rls.process.pid
    rng = random.Random(20261201)
    answers: Counter[tuple[str, int]] = Counter()
    rss_warm = 0
    http_conn = http.client.HTTPConnection("127.0.0.1", rls.authz_http_port, timeout=30)
    channel = grpc.insecure_channel(rls.grpc_addr)
    stub = authz_grpc.AuthorizationStub(channel)

    def over_http(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        http_conn.request("POST", CHECK_PREFIX + OTLP_PATH, body=body, headers={**headers, "x-scope-orgid": TENANT})
        reply = http_conn.getresponse()
        reply.read()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}

    def over_grpc(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        check = authz.CheckRequest()
        request = check.attributes.request.http
        request.path, request.method, request.raw_body = OTLP_PATH, "POST", body
        request.headers.update({**headers, "x-scope-orgid": TENANT})
        answer = stub.Check(check, timeout=30)
        if answer.HasField("ok_response"):
            return 200, {h.header.key: h.header.value for h in answer.ok_response.headers}
        return answer.denied_response.status.code, {
            h.header.key: h.header.value for h in answer.denied_response.headers
        }

    transports: tuple[Callable[[bytes, dict[str, str]], tuple[int, dict[str, str]]], ...] = (over_http, over_grpc)
    try:
        for i in range(BODIES):
            body, headers, kind = generate(rng)
            status, answer = transports[i % 2](body, headers)
            answers[(kind, status)] += 1
            where = (i, kind, status, headers, body[:40])
            if status in (200, 429):  # a decision on the limits, for a body that was counted
                assert ITEMS_HEADER in answer or status == 429, where
                assert status == 429 or answer[DECISION_HEADER] == "allowed", where
            else:
                assert status in (400, 413, 415), where
            if kind.startswith("bomb"):
                assert status == 413, where
            if kind == "valid":
                assert status == 200, where
            if kind == "refused by headers":
                assert status == 415, where
            if i == WARM_UP:
                rss_warm = rss_bytes(pid)
    finally:
        http_conn.close()
        channel.close()
    assert rls.process.popen is not None and rls.process.popen.poll() is None, "the RLS exited"
    rss_end = rss_bytes(pid)
    by_status = Counter[int]()
    for (_, status), n in answers.items():
        by_status[status] += n
    print(
        f"\nanswers over {BODIES} bodies: {dict(sorted(by_status.items()))}; by kind: "
        f"{dict(sorted(answers.items()))}; RLS RSS {rss_warm >> 20} MiB after {WARM_UP}, {rss_end >> 20} MiB after "
        f"{BODIES}"
    )
    # Every kind was generated and exercised both transports' refusals.
    assert by_status[400] > BODIES // 3 and by_status[413] > BODIES // 20 and by_status[415] > BODIES // 20
    assert by_status[200] > BODIES // 20
    assert rss_end - rss_warm < RSS_GROWTH_BOUND, f"RLS memory grew by {(rss_end - rss_warm) >> 20} MiB"
