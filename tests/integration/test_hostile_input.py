"""100,000 generated bodies through the real Check handler (servicer + enforcer + store on real
Redis): corrupt snappy, lying length headers, deep and huge protobuf, random bytes. Every answer
is 400, 413 or 415 (or a limit decision, for those still valid remote_write by chance); nothing
raises; memory stays bounded."""

from __future__ import annotations

import random
import resource
import struct

import snappy
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.traffic import RW1_HEADERS, RW2_HEADERS, Shape, compress, rw1_request, rw2_request
from mimir_edge.rls.defaults import DefaultsCache
from mimir_edge.rls.enforcer import Enforcer, EnforcerConfig, FailureMode
from mimir_edge.rls.ext_authz import check_response
from mimir_edge.rls.metrics import RlsMetrics
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import RedisConfig, connect
from mimir_edge.store.limits import LimitsStore

BODIES = 100_000
MAX_BYTES = 1 << 20
VALID_RW1 = rw1_request(Shape(series=30, histograms_per_series=1, exemplars_per_series=1, metadata=3))
VALID_RW2 = rw2_request(Shape(series=30, histograms_per_series=1, exemplars_per_series=1, metadata=3))


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def nested(depth: int) -> bytes:
    """A timeseries whose exemplar nests messages `depth` deep (field 1 inside field 1 ...)."""
    inner = b""
    for _ in range(depth):
        inner = b"\x0a" + varint(len(inner)) + inner
    return inner


def generate(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    kind = rng.randrange(9)
    headers = dict(rng.choice((RW1_HEADERS, RW2_HEADERS)))
    valid = VALID_RW1 if headers is RW1_HEADERS or "proto=" not in headers["content-type"] else VALID_RW2
    if kind == 0:  # random bytes
        return rng.randbytes(rng.randrange(0, 512)), headers
    if kind == 1:  # snappy of random bytes
        return bytes(snappy.compress(rng.randbytes(rng.randrange(0, 2048)))), headers
    if kind == 2:  # a valid body with bytes flipped before compression
        raw = bytearray(valid)
        for _ in range(rng.randrange(1, 10)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return compress(bytes(raw)), headers
    if kind == 3:  # a valid compressed body, truncated or corrupted after compression
        body = bytearray(compress(valid))
        if rng.random() < 0.5:
            return bytes(body[: rng.randrange(len(body))]), headers
        body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        return bytes(body), headers
    if kind == 4:  # a lying length header: huge, or smaller than the data
        body = compress(valid)
        declared = rng.choice((2**32 - 1, MAX_BYTES + 1, rng.randrange(1, 64)))
        return varint(declared) + body[len(varint(len(valid))) :], headers
    if kind == 5:  # deep nesting
        return compress(b"\x0a" + varint(len(n := nested(rng.randrange(50, 400)))) + n), headers
    if kind == 6:  # a huge declared field length inside the protobuf
        return compress(b"\x0a" + varint(rng.choice((2**31, 2**28, 10**9))) + rng.randbytes(16)), headers
    if kind == 7:  # wrong content type or encoding
        headers["content-type" if rng.random() < 0.5 else "content-encoding"] = rng.choice(
            ("text/plain", "gzip", "application/json", "application/x-protobuf;proto=nope")
        )
        return compress(valid), headers
    # packed fields with absurd lengths, odd wire types
    return compress(struct.pack("<BQ", rng.choice((0x09, 0x0B, 0x0C, 0x0D, 0x0F)), rng.getrandbits(64))), headers


async def test_hostile_bodies_get_client_errors_and_nothing_breaks(redis_server: RedisServer) -> None:
    config = RedisConfig(url=redis_server.url, timeout_s=30.0)
    redis = connect(config)
    store = BucketStore.for_config(config, redis)
    metrics = RlsMetrics()
    defaults = DefaultsCache(LimitsStore(redis))
    enforcer = Enforcer(
        store,
        defaults,
        metrics,
        EnforcerConfig(
            tenant_header="x-scope-orgid", max_request_bytes=MAX_BYTES, shadow=False, failure_mode=FailureMode.ALLOW
        ),
    )
    rng = random.Random(20261127)
    statuses: dict[int, int] = {}
    rss_before = 0
    try:
        for i in range(BODIES):
            body, headers = generate(rng)
            result = await enforcer.check({**headers, "x-scope-orgid": "fuzz"}, body)
            response = check_response(result)
            status = response.denied_response.status.code if response.status.code else 200
            statuses[status] = statuses.get(status, 0) + 1
            if status in (200, 429):  # a decision on the limits: only for what was counted
                assert result.counts is not None
            else:
                assert status in (400, 413, 415), (i, status, body[:40], headers)
            if i == 10_000:
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        await store.close()
        await redis.aclose()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"\nanswers over {BODIES} bodies: {dict(sorted(statuses.items()))}; "
        f"max RSS {rss_before // 1024} MB after 10k, {rss_after // 1024} MB after {BODIES // 1000}k"
    )
    assert statuses.get(400, 0) > BODIES // 2 and statuses.get(413, 0) > 0 and statuses.get(415, 0) > 0
    assert rss_after - rss_before < 64 * 1024, "memory grew while fuzzing"
