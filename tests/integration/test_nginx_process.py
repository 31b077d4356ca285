"""The rendered NGINX configs in a real NGINX, with recording upstreams standing for Envoy and the
distributor: what remote_write needs passes through unchanged both ways, the tenant comes from the
header or from basic auth, each phase reaches only the upstreams it should, and a graceful reload
(mimir_edge.localstack.nginx.NginxProcess.reload, SIGHUP) while requests flow loses none."""

from __future__ import annotations

import base64
import http.client
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from mimir_edge.deploy.nginx import MIRROR_PATH, NginxOptions, healthz_body
from mimir_edge.localstack.nginx import NginxProcess, healthz
from mimir_edge.localstack.processes import MissingProgram
from mimir_edge.localstack.traffic import RW2_HEADERS, Shape, compress, rw2_request

from tests.recording_upstream import RecordingUpstream
from tests.stack import post
from tests.waiting import wait_for


@pytest.fixture
def envoy() -> Iterator[RecordingUpstream]:
    upstream = RecordingUpstream("envoy", keep_bodies=True).start()
    yield upstream
    upstream.stop()


@pytest.fixture
def distributor() -> Iterator[RecordingUpstream]:
    upstream = RecordingUpstream("distributor", keep_bodies=True).start()
    yield upstream
    upstream.stop()


@pytest.fixture
def start_nginx(tmp_path: Path) -> Iterator[object]:
    started: list[NginxProcess] = []

    def start(options: NginxOptions) -> NginxProcess:
        try:
            process = NginxProcess(tmp_path / f"nginx-{len(started)}", replace(options, listen=("127.0.0.1", 0)))
            started.append(process)
            return process.start()
        except MissingProgram as exc:
            pytest.fail(str(exc))

    yield start
    for process in started:
        process.stop()


def options_for(phase: str, envoy: RecordingUpstream, distributor: RecordingUpstream, **kw: object) -> NginxOptions:
    percent = 50 if phase == "canary" else 0
    return NginxOptions(
        phase=phase,
        canary_percent=percent,
        envoy=envoy.address,
        distributor=distributor.address,
        **kw,  # type: ignore[arg-type]
    )


def test_429_and_retry_after_reach_the_client_unchanged(start_nginx, envoy: RecordingUpstream, distributor) -> None:  # type: ignore[no-untyped-def]
    envoy.status = 429
    envoy.answer_headers = {"Retry-After": "7", "X-Mimir-Edge-Reason": "ingestion_rate"}
    nginx = start_nginx(options_for("full", envoy, distributor))
    reply = post(nginx.url, b"body", {"X-Scope-OrgID": "noisy"})
    assert reply.status == 429
    assert reply.headers["retry-after"] == "7"
    assert reply.headers["x-mimir-edge-reason"] == "ingestion_rate"
    assert reply.headers["x-mimir-edge-route"] == "envoy"
    assert reply.body == b"envoy"


def test_remote_write_headers_and_body_reach_the_upstream_and_written_counts_come_back(  # type: ignore[no-untyped-def]
    start_nginx, envoy: RecordingUpstream, distributor: RecordingUpstream
) -> None:
    distributor.answer_headers = {"X-Prometheus-Remote-Write-Samples-Written": "300"}
    nginx = start_nginx(options_for("direct", envoy, distributor))
    body = compress(rw2_request(Shape(series=300)))
    headers = {**RW2_HEADERS, "X-Scope-OrgID": "team-a", "Retry-Attempt": "2"}
    reply = post(nginx.url, body, headers)
    assert reply.status == 200
    assert reply.headers["x-prometheus-remote-write-samples-written"] == "300"
    (seen,) = distributor.seen
    assert seen.body == body and seen.path == "/api/v1/push"
    for key, value in headers.items():
        assert seen.headers[key.lower()] == value
    assert list(seen.headers).count("x-scope-orgid") == 1
    assert not envoy.seen, "the direct config reached Envoy"


def test_upstream_path_rewrites_the_push_path(start_nginx, envoy, distributor: RecordingUpstream) -> None:  # type: ignore[no-untyped-def]
    """A receiving Prometheus stands in for Mimir at /api/v1/write; clients still push to /api/v1/push."""
    nginx = start_nginx(options_for("direct", envoy, distributor, upstream_path="/api/v1/write"))
    assert post(nginx.url, b"x", {"X-Scope-OrgID": "a"}).status == 200
    assert [s.path for s in distributor.seen] == ["/api/v1/write"]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_user_becomes_the_tenant_when_the_header_is_absent(  # type: ignore[no-untyped-def]
    start_nginx, envoy: RecordingUpstream, distributor
) -> None:
    options = options_for("full", envoy, distributor, basic_auth_tenants=(("team-a", "s3cret"), ("team-b", "other")))
    nginx = start_nginx(options)
    post(nginx.url, b"1", basic("team-a", "s3cret"))
    post(nginx.url, b"2", basic("team-b", "other"))
    post(nginx.url, b"3", {**basic("team-a", "s3cret"), "X-Scope-OrgID": "explicit"})  # the header wins
    post(nginx.url, b"4", basic("team-a", "wrong-password"))  # unknown pair: no tenant
    post(nginx.url, b"5", {})
    tenants = {s.body: s.headers.get("x-scope-orgid") for s in envoy.seen}
    assert tenants == {b"1": "team-a", b"2": "team-b", b"3": "explicit", b"4": None, b"5": None}


@pytest.mark.parametrize(
    ("phase", "to_envoy", "to_distributor"),
    [("direct", 0, 1), ("full", 1, 0), ("mirror", 1, 1)],
)
def test_each_phase_reaches_only_its_upstreams(  # type: ignore[no-untyped-def]
    start_nginx,
    envoy: RecordingUpstream,
    distributor: RecordingUpstream,
    phase: str,
    to_envoy: int,
    to_distributor: int,
) -> None:
    nginx = start_nginx(options_for(phase, envoy, distributor))
    reply = post(nginx.url, b"payload", {"X-Scope-OrgID": "t"})
    assert reply.status == 200
    wait_for(lambda: len(envoy.seen) >= to_envoy, timeout_s=30, what="the mirrored copy")
    # A grace period for a stray copy to show (nothing to wait for when none is due); a slow host
    # can only hide a stray copy here, never fail a correct config.
    time.sleep(0.2)
    assert (len(envoy.seen), len(distributor.seen)) == (to_envoy, to_distributor)
    if phase == "mirror":
        # the client hears the distributor; the copy goes to Envoy on a path Mimir does not ingest
        assert reply.body == b"distributor"
        assert envoy.seen[0].path == MIRROR_PATH and envoy.seen[0].body == b"payload"
        assert envoy.seen[0].headers["x-scope-orgid"] == "t"


def test_mirror_answers_the_client_with_the_distributors_status_whatever_envoy_says(  # type: ignore[no-untyped-def]
    start_nginx, envoy: RecordingUpstream, distributor: RecordingUpstream
) -> None:
    envoy.status = 429
    nginx = start_nginx(options_for("mirror", envoy, distributor))
    assert [post(nginx.url, b"x", {"X-Scope-OrgID": "t"}).status for _ in range(5)] == [200] * 5


def test_a_slow_or_absent_envoy_never_fails_a_mirrored_write(  # type: ignore[no-untyped-def]
    start_nginx, envoy: RecordingUpstream, distributor: RecordingUpstream
) -> None:
    """NGINX answers at once, but the next request on the same keep-alive connection waits for the
    previous copy: the mirror location's 2 s timeouts bound that wait.

    Envoy answers after 10 s, the timeouts are 2 s: each bound below sits between what the right
    behaviour takes and what a wrong one would, with room for a loaded host on both sides."""
    envoy.delay_s = 10
    nginx = start_nginx(options_for("mirror", envoy, distributor))
    conn = http.client.HTTPConnection("127.0.0.1", nginx.listen_port, timeout=15)
    timings = []
    try:
        for _ in range(3):
            started = time.monotonic()
            conn.request("POST", "/api/v1/push", body=b"x", headers={"X-Scope-OrgID": "t"})
            reply = conn.getresponse()
            reply.read()
            timings.append((reply.status, time.monotonic() - started))
    finally:
        conn.close()
    print(
        "mirror, Envoy answering after 10 s, keep-alive client: " + ", ".join(f"{s} in {t:.2f} s" for s, t in timings)
    )
    assert [status for status, _ in timings] == [200] * 3
    assert timings[0][1] < 1.5  # the first answer does not wait for its copy (≥ 2 s if it did)
    # The next one waits for the previous copy, cut at 2 s (10 s if the timeout did not hold).
    assert all(1.5 < t < 6.0 for _, t in timings[1:])

    envoy.stop()  # Envoy gone: connection refused, the copy is dropped at once
    assert [post(nginx.url, b"x", {"X-Scope-OrgID": "t"}).status for _ in range(3)] == [200] * 3
    assert len(distributor.seen) == 6


def test_body_limit_healthz_and_other_paths(start_nginx, envoy, distributor: RecordingUpstream) -> None:  # type: ignore[no-untyped-def]
    options = options_for("direct", envoy, distributor, client_max_body_size=1000)
    nginx = start_nginx(options)
    assert post(nginx.url, b"x" * 1000, {"X-Scope-OrgID": "t"}).status == 200
    assert post(nginx.url, b"x" * 1001, {"X-Scope-OrgID": "t"}).status == 413
    assert post(nginx.url, b"x", {"X-Scope-OrgID": "t"}, path="/api/v1/query").status == 404
    assert healthz(nginx.listen_port) == healthz_body(nginx.options)
    assert len(distributor.seen) == 1


@dataclass
class Traffic:
    """Client threads posting numbered requests until stopped. A request whose connection closes
    before any answer (an old worker closing an idle keep-alive connection as it shuts down) is
    sent again on a new connection, as Prometheus does; anything else is a failure."""

    port: int
    keepalive: bool
    sequence: Iterator[int] = field(default_factory=itertools.count)
    answers: Counter[int] = field(default_factory=Counter)
    resent: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            while not self.stop.is_set():
                with self.lock:
                    seq = next(self.sequence)
                headers = {"X-Scope-OrgID": f"tenant-{seq % 20}", "X-Seq": str(seq)}
                if not self.keepalive:
                    headers["Connection"] = "close"
                for attempt in range(3):
                    try:
                        conn.request("POST", "/api/v1/push", body=b"sample", headers=headers)
                        reply = conn.getresponse()
                        reply.read()
                    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                        with self.lock:
                            self.resent += 1
                        if attempt == 2:
                            self.failures.append(f"{seq}: {exc!r}")
                        continue
                    with self.lock:
                        self.answers[reply.status] += 1
                    if reply.status != 200:
                        self.failures.append(f"{seq}: {reply.status}")
                    if not self.keepalive:
                        conn.close()
                    break
        finally:
            conn.close()


@pytest.mark.parametrize("keepalive", [False, True], ids=["new-connections", "keepalive"])
def test_reload_while_requests_flow_loses_none(  # type: ignore[no-untyped-def]
    start_nginx, envoy: RecordingUpstream, distributor: RecordingUpstream, keepalive: bool
) -> None:
    """direct → full → canary 50 % → direct (the emergency rollback), reloaded under 4 client threads."""
    nginx: NginxProcess = start_nginx(options_for("direct", envoy, distributor))
    traffic = Traffic(nginx.listen_port, keepalive)
    threads = [threading.Thread(target=traffic.run) for _ in range(4)]
    for thread in threads:
        thread.start()

    def answered() -> int:
        with traffic.lock:
            return sum(traffic.answers.values())

    def traffic_flows() -> None:
        # Some requests in each phase, counted rather than timed: a slow host slows them all.
        floor = answered() + 20
        wait_for(lambda: answered() >= floor, timeout_s=30, what=f"20 more answers (had {floor - 20})")

    try:
        for phase in ("full", "canary", "direct"):
            traffic_flows()
            nginx.reload(options_for(phase, envoy, distributor))
        traffic_flows()
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join(15)
    sent = next(traffic.sequence)  # one past the last number handed out
    received = Counter(int(s.headers["x-seq"]) for s in envoy.seen + distributor.seen)
    print(
        f"reload under traffic ({'keep-alive' if keepalive else 'new connection per request'}): "
        f"{sent} requests, {traffic.answers[200]} answered 200, {traffic.resent} re-sent after a closed "
        f"connection, upstreams got {sum(received.values())} (envoy {len(envoy.seen)}, "
        f"distributor {len(distributor.seen)})"
    )
    assert not traffic.failures, traffic.failures[:5]
    assert traffic.answers == Counter({200: sent})
    assert received == Counter(range(sent)), "a request was lost or delivered twice"
    assert envoy.seen and distributor.seen
    if not keepalive:
        assert traffic.resent == 0
