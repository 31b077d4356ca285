"""A check slower than the retry back-off is still one check, its verdict used, up to the authz
timeout: real Envoy in front of an ext_authz HTTP server that holds its answer.

Envoy turns the ext_authz `retry_policy` (config.core.v3.RetryPolicy) into a route retry policy
whose per-try timeout is the back-off's `max_interval` (Http::Utility::convertCoreToRouteRetryPolicy).
With a 50 ms back-off ceiling every check slower than 50 ms (a large body on a busy replica) was
cut off, sent again (charged again) twice more, then failed: a 503 when failing closed, admitted
unenforced when failing open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mimir_edge.contract import CHECK_PREFIX, HEALTH_PATH
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.localstack.distributor import StandInDistributor
from mimir_edge.localstack.envoy import EnvoyProcess

from tests.stack import Stack, post

#: Far above the 50 ms that used to cut checks off, far below the authz timeout.
HOLD_S = 0.4
AUTHZ_TIMEOUT_S = 3.0


class SlowAuthz(ThreadingHTTPServer):
    """Answers every check 429 "held verdict" after HOLD_S; counts the checks it received."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.checks = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: SlowAuthz
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # Envoy's active health check
        self._answer(200 if self.path == HEALTH_PATH else 404, b"SERVING\n")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        if not self.path.startswith(CHECK_PREFIX):
            self._answer(404, b"")
            return
        with self.server.lock:
            self.server.checks += 1
        time.sleep(HOLD_S)  # the slow check: what the test is about, not a wait for a condition
        self._answer(429, b"held verdict\n")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_authz() -> Iterator[SlowAuthz]:
    server = SlowAuthz()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def wait_healthy(envoy: EnvoyProcess, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if "cluster.rls.membership_healthy: 1" in envoy.stats():
            return
        time.sleep(0.05)
    raise AssertionError(f"Envoy never saw the authz server healthy: {envoy.stats()[-2000:]}")


@pytest.mark.parametrize("failure_mode_allow", [False, True])
def test_a_slow_check_is_asked_once_and_its_verdict_used(
    tmp_path: Path, slow_authz: SlowAuthz, failure_mode_allow: bool
) -> None:
    distributor = StandInDistributor().start()
    stack = Stack(tmp_path)
    try:
        options = EnvoyOptions(
            rls=(("127.0.0.1", slow_authz.server_address[1]),),
            authz_transport="http",
            upstream=("127.0.0.1", distributor.port),
            listen=("127.0.0.1", 0),
            admin=("127.0.0.1", 0),
            authz_timeout_s=AUTHZ_TIMEOUT_S,
            failure_mode_allow=failure_mode_allow,
        )
        envoy = stack.add_envoy(options)
        wait_healthy(envoy)
        reply = post(envoy.url, b"\x00", {"X-Scope-OrgID": "t", "content-type": "application/x-protobuf"})
        assert (reply.status, reply.body) == (429, b"held verdict\n")
        assert slow_authz.checks == 1
        received, _ = distributor.snapshot()
        assert received == []  # denied: nothing reached the distributor, whatever the failure mode
    finally:
        stack.close()
        distributor.stop()
