"""A tiny HTTP/1.1 server on a free 127.0.0.1 port that records every request it gets and answers
with a fixed status and headers: stands for "Envoy" or "the distributor" behind a real NGINX when
only the routing is under test."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mimir_edge.httpd import Server


class _QuietServer(Server):
    def handle_error(self, request: object, client_address: object) -> None:
        # NGINX closing an idle keep-alive connection (an old worker exiting on reload) is normal.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Seen:
    path: str
    tenant: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingUpstream:
    name: str
    status: int = 200
    answer_headers: dict[str, str] = field(default_factory=dict)
    keep_bodies: bool = False
    #: Seconds to wait before answering (a slow upstream).
    delay_s: float = 0.0
    tenants: Counter[str] = field(default_factory=Counter)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> RecordingUpstream:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: without this, Nagle + delayed ACK cost 40 ms each.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                tenant = headers.get("x-scope-orgid", "")
                with outer._lock:
                    outer.tenants[tenant] += 1
                    if outer.keep_bodies:
                        outer.seen.append(Seen(self.path, tenant, headers, body))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                answer = outer.name.encode()
                self.send_response(outer.status)
                for key, value in outer.answer_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            # Queries passed through by NGINX arrive as GET; recorded the same way.
            do_GET = do_POST

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name=f"upstream-{self.name}", daemon=True).start()
        return self

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.tenants)

    def reset(self) -> None:
        with self._lock:
            self.tenants.clear()
            self.seen.clear()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
