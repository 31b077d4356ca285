"""A stand-in Mimir distributor: accepts remote_write and OTLP (on Mimir's OTLP path), counts
what each tenant got, records requests. Clearly not Mimir: it answers like Mimir's push endpoint
(200; the RW 2.0 written headers) but stores nothing. For tests, the demo and the local stack."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mimir_edge import httpd
from mimir_edge.contract import OTLP_PATH
from mimir_edge.core.errors import EdgeError
from mimir_edge.core.otlp import count_otlp_request
from mimir_edge.core.remote_write import Protocol, count_write_request

MAX_BODY = 64 << 20


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def _count(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
    """(items, extra answer headers) of one write, as Mimir's push or OTLP endpoint would take it."""
    if path.partition("?")[0] == OTLP_PATH:
        otlp = count_otlp_request(
            body,
            content_type=headers.get("content-type"),
            content_encoding=headers.get("content-encoding"),
            max_decompressed_bytes=MAX_BODY,
        )
        return otlp.items, {}
    counts = count_write_request(
        body,
        content_type=headers.get("content-type"),
        content_encoding=headers.get("content-encoding"),
        max_decompressed_bytes=MAX_BODY,
    )
    if counts.protocol is not Protocol.RW2:
        return counts.items, {}
    return counts.items, {
        "X-Prometheus-Remote-Write-Samples-Written": str(counts.float_samples),
        "X-Prometheus-Remote-Write-Histograms-Written": str(counts.histogram_samples),
        "X-Prometheus-Remote-Write-Exemplars-Written": str(counts.exemplars),
    }


@dataclass
class StandInDistributor:
    host: str = "127.0.0.1"
    port: int = 0
    keep_requests: int = 1000
    requests: list[Received] = field(default_factory=list)
    items: Counter[str] = field(default_factory=Counter)
    request_count: Counter[str] = field(default_factory=Counter)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> StandInDistributor:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle adds 40 ms behind a proxy.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_BODY:
                    self._answer(413, b"too large\n")
                    return
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                tenant = headers.get("x-scope-orgid", "")
                try:
                    items, extra = _count(self.path, headers, body)
                except EdgeError as exc:
                    self._answer(exc.http_status, f"{exc}\n".encode())
                    return
                outer._record(Received("POST", self.path, headers, body), tenant, items)
                self._answer(200, b"", extra)

            def do_GET(self) -> None:
                with outer._lock:
                    lines = [f"{t} requests={outer.request_count[t]} items={n}" for t, n in sorted(outer.items.items())]
                self._answer(200, ("stand-in distributor (not Mimir)\n" + "\n".join(lines) + "\n").encode())

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = httpd.Server((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="stand-in-distributor", daemon=True).start()
        return self

    def _record(self, received: Received, tenant: str, items: int) -> None:
        with self._lock:
            if len(self.requests) < self.keep_requests:
                self.requests.append(received)
            self.items[tenant] += items
            self.request_count[tenant] += 1

    def snapshot(self) -> tuple[list[Received], Counter[str]]:
        with self._lock:
            return list(self.requests), Counter(self.items)

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
