"""The RLS's ext_authz HTTP service on its own (no Envoy), on a real socket with real Redis:
keep-alive and pipelined checks answered in order, bad bytes refused without harming the server,
the health answer Envoy's active health check reads, a Redis that stops answering.
Through Envoy: tests/integration/test_envoy_rls.py."""

from __future__ import annotations

import http.client
import math
import os
import random
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.processes import free_port
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

from tests.stack import Stack, set_limits
from tests.waiting import wait_for

BODY = compress(rw1_request(Shape(series=20)))


@pytest.fixture(scope="module")
def rls(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[RlsProcess]:
    stack = Stack(tmp_path_factory.mktemp("http-authz"))
    yield stack.add_rls({"REDIS_URL": redis_server.url})
    stack.close()


def check_bytes(tenant: str, body: bytes = BODY) -> bytes:
    head = f"POST /ext_authz/api/v1/push HTTP/1.1\r\nhost: rls\r\nx-scope-orgid: {tenant}\r\n"
    head += f"content-type: {RW1_HEADERS['content-type']}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def read_responses(sock: socket.socket, count: int) -> list[Answer]:
    """`count` responses read off one connection, in the order they came."""
    stream = sock.makefile("rb")
    out = []
    for _ in range(count):
        status = int(stream.readline().split()[1])
        headers = {}
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        out.append(Answer(status, headers, stream.read(int(headers["content-length"]))))
    return out


def connect(rls: RlsProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", rls.authz_http_port), timeout=5)


def test_checks_on_one_keep_alive_connection_are_answered_in_order(rls: RlsProcess, redis_server: RedisServer) -> None:
    ok, noisy = f"ok-{uuid.uuid4().hex[:8]}", f"noisy-{uuid.uuid4().hex[:8]}"
    set_limits(redis_server.url, noisy, TenantLimits(ingestion_rate=1, ingestion_burst_size=30))
    with connect(rls) as sock:
        # Pipelined in one write: admitted, denied (30 - 20 < 20), admitted for the other tenant.
        started = time.monotonic()
        sock.sendall(check_bytes(ok) + check_bytes(noisy) + check_bytes(noisy) + check_bytes(ok))
        first, second, third, fourth = read_responses(sock, 4)
        apart = time.monotonic() - started  # at most this much refill between the noisy decisions
    assert [r.status for r in (first, second, third, fourth)] == [200, 200, 429, 200]
    assert first.headers["x-mimir-edge-decision"] == "allowed"
    assert first.headers["x-mimir-edge-items"] == "20" and first.headers["x-mimir-edge-series"] == "20"
    assert third.headers["x-mimir-edge-reason"] == "ingestion_rate"
    # 10 missing tokens at 1/s: 10 s, less what refilled between the two decisions.
    assert math.ceil(10 - apart) <= int(third.headers["retry-after"]) <= 10, (third.headers["retry-after"], apart)
    assert b"exceeded the ingestion rate limit, set to 1 items/s" in third.body


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", 400),  # TLS hello
        (b"POST /ext_authz/x HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
        (b"POST /ext_authz/x HTTP/1.1\r\ncontent-length: 999999999999\r\n\r\n", 413),
    ],
)
def test_bad_bytes_get_a_status_and_a_closed_connection_and_the_server_carries_on(
    rls: RlsProcess, raw: bytes, status: int
) -> None:
    with connect(rls) as sock:
        sock.sendall(raw)
        (reply,) = read_responses(sock, 1)
        assert reply.status == status
        assert reply.headers["connection"] == "close"
        assert sock.recv(1) == b""  # closed by the server
    with connect(rls) as sock:
        sock.sendall(check_bytes(f"after-{uuid.uuid4().hex[:8]}"))
        assert read_responses(sock, 1)[0].status == 200


def test_invalid_bodies_and_missing_tenants_get_the_contract_statuses(rls: RlsProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", rls.authz_http_port, timeout=5)
    try:
        answers = []
        for body, tenant in ((b"not snappy", "t"), (BODY, None)):
            headers = {"content-type": RW1_HEADERS["content-type"], **({"x-scope-orgid": tenant} if tenant else {})}
            conn.request("POST", "/ext_authz/api/v1/push", body=body, headers=headers)
            reply = conn.getresponse()
            answers.append((reply.status, reply.getheader("x-mimir-edge-reason"), reply.read()))
    finally:
        conn.close()
    assert [(status, reason) for status, reason, _ in answers] == [(400, "invalid_body"), (401, "missing_tenant")]
    assert [body.endswith(b"\n") for _, _, body in answers] == [True, True], answers


def test_health_answers_serving_and_other_paths_are_404(rls: RlsProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", rls.authz_http_port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        health = conn.getresponse()
        assert (health.status, health.read()) == (200, b"SERVING\n")
        conn.request("GET", "/api/v1/push")
        missing = conn.getresponse()
        assert missing.status == 404 and b"/ext_authz" in missing.read()
    finally:
        conn.close()


def test_health_is_503_until_redis_is_reached(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    try:
        rls = stack.add_rls({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, wait_serving=False)
        conn = http.client.HTTPConnection("127.0.0.1", rls.authz_http_port, timeout=5)
        conn.request("GET", "/healthz")
        reply = conn.getresponse()
        assert (reply.status, reply.read()) == (503, b"NOT_SERVING\n")
        conn.close()
    finally:
        stack.close()


def test_mangled_requests_never_take_the_server_down(rls: RlsProcess) -> None:
    """300 mangled requests (flipped bytes, cuts, random junk), each on its own connection: every
    one is answered with a status or closed, and a good check still gets 200 afterwards."""
    rng = random.Random(9)
    good = check_bytes("fuzz")
    statuses: dict[int, int] = {}
    for _ in range(300):
        raw = bytearray(good)
        kind = rng.randrange(3)
        if kind == 0:
            for _ in range(rng.randrange(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif kind == 1:
            raw = raw[: rng.randrange(len(raw))]
        else:
            raw = bytearray(rng.randbytes(rng.randrange(1, 300)))
        with connect(rls) as sock:
            sock.sendall(bytes(raw))
            sock.shutdown(socket.SHUT_WR)  # no more bytes: an incomplete request stays incomplete
            first = sock.recv(12)
        status = int(first.split()[1]) if first.startswith(b"HTTP/1.1 ") else 0  # 0: closed unanswered
        statuses[status] = statuses.get(status, 0) + 1
    assert set(statuses) <= {0, 200, 400, 401, 404, 413, 415, 429, 431, 501}, statuses
    assert statuses.get(400, 0) > 0
    with connect(rls) as sock:
        sock.sendall(check_bytes(f"after-fuzz-{uuid.uuid4().hex[:8]}"))
        assert read_responses(sock, 1)[0].status == 200
    assert rls.process is not None and "Traceback" not in rls.process.log_path.read_text()


def test_a_redis_that_stops_answering_costs_three_timeouts_then_nothing(tmp_path: Path) -> None:
    """Redis holds the connection but answers nothing (SIGSTOP): the first checks wait out
    REDIS_TIMEOUT and are admitted by the failure mode; after 3 the breaker is open and checks are
    answered without waiting. When Redis answers again, decisions are its own again.

    The timings are compared with REDIS_TIMEOUT only: a check that waited for Redis cannot take less
    than the timeout, and one that did not takes far less, even on a loaded host; a timeout of 1.5 s
    leaves that margin without a tight threshold."""
    redis = RedisServer(tmp_path / "stopped-redis").start()
    stack = Stack(tmp_path)
    assert redis.process is not None
    pid = redis.process.pid
    timeout_s = 1.5
    try:
        rls = stack.add_rls({"REDIS_URL": redis.url, "REDIS_TIMEOUT": str(timeout_s)})
        tenant = f"hung-{uuid.uuid4().hex[:8]}"
        with connect(rls) as sock:
            sock.sendall(check_bytes(tenant))
            assert read_responses(sock, 1)[0].headers["x-mimir-edge-decision"] == "allowed"
            os.kill(pid, signal.SIGSTOP)
            waits, decisions = [], []
            for _ in range(8):
                started = time.perf_counter()
                sock.sendall(check_bytes(tenant))
                (answer,) = read_responses(sock, 1)
                waits.append(time.perf_counter() - started)
                decisions.append((answer.status, answer.headers["x-mimir-edge-decision"]))
            assert decisions == [(200, "failure_allowed")] * 8
            assert all(w >= timeout_s - 0.01 for w in waits[:3]), waits  # each waited out the timeout
            assert all(w < timeout_s for w in waits[3:]), waits  # none waited for Redis
            os.kill(pid, signal.SIGCONT)

            def decided_by_redis() -> bool:
                sock.sendall(check_bytes(tenant))
                return read_responses(sock, 1)[0].headers["x-mimir-edge-decision"] == "allowed"

            wait_for(decided_by_redis, what="decisions from Redis again after SIGCONT")
    finally:
        os.kill(pid, signal.SIGCONT)
        stack.close()
        redis.stop()


def test_a_long_pipeline_is_read_at_the_pace_it_is_answered(tmp_path: Path, redis_server: RedisServer) -> None:
    """40 pipelined checks of 53 KB (2.1 MB) with MAX_REQUEST_BYTES=400000: the server stops reading while
    more than one request's worth waits, and still answers every one, in order."""
    stack = Stack(tmp_path)
    try:
        rls = stack.add_rls({"REDIS_URL": redis_server.url, "MAX_REQUEST_BYTES": "400000"})
        body = compress(rw1_request(Shape(series=2000)))
        assert 40 * len(body) > 2 * 400_000
        tenants = [f"pipe-{i}-{uuid.uuid4().hex[:6]}" for i in range(40)]
        with connect(rls) as sock:
            sock.sendall(b"".join(check_bytes(t, body) for t in tenants))
            answers = read_responses(sock, len(tenants))
        assert [(a.status, a.headers.get("x-mimir-edge-items"), a.body) for a in answers] == [(200, "2000", b"")] * len(
            tenants
        )
        samples = urllib.request.urlopen(rls.metrics_url, timeout=5).read().decode()
        for tenant in tenants:
            assert f'rls_tenant_requests_total{{decision="allowed",tenant="{tenant}"}} 1.0' in samples
    finally:
        stack.close()


def test_hundreds_of_pipelined_health_checks_are_all_answered(rls: RlsProcess) -> None:
    with connect(rls) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: rls\r\n\r\n" * 500)
        answers = read_responses(sock, 500)
    assert {(a.status, a.body) for a in answers} == {(200, b"SERVING\n")}


def test_a_head_request_gets_headers_only_and_the_connection_stays_in_step(rls: RlsProcess) -> None:
    """Envoy passes the client's method on: a HEAD check's answer must carry no body, or the bytes
    left over would be read as the next answer."""
    with connect(rls) as sock:
        head = check_bytes("").replace(b"POST /ext_authz", b"HEAD /ext_authz")  # no tenant: 401
        sock.sendall(head + check_bytes(f"after-head-{uuid.uuid4().hex[:8]}"))
        stream = sock.makefile("rb")
        assert stream.readline().startswith(b"HTTP/1.1 401 ")
        lines = []
        while (line := stream.readline()) != b"\r\n":
            lines.append(line.decode().lower())
        assert any(line.startswith("content-length: ") and line.strip() != "content-length: 0" for line in lines)
        assert stream.readline().startswith(b"HTTP/1.1 200 ")  # the next answer, not a stale body


def test_sigterm_closes_idle_connections_and_the_process_exits_cleanly(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    stack = Stack(tmp_path)
    try:
        rls = stack.add_rls({"REDIS_URL": redis_server.url})
        assert rls.process is not None and rls.process.popen is not None
        with connect(rls) as idle, connect(rls) as busy:
            busy.sendall(check_bytes(f"drain-{uuid.uuid4().hex[:8]}"))
            assert read_responses(busy, 1)[0].status == 200
            rls.process.terminate()
            idle.settimeout(5)
            assert idle.recv(1) == b""  # closed by the server, nothing half-answered
            assert rls.process.popen.wait(timeout=15) == 0
    finally:
        stack.close()
