"""A small threaded HTTP endpoint for health, readiness and metrics, beside an asyncio service.

Handlers run on the server's threads and only read plain attributes of the service's objects,
which is safe under the GIL; anything that needs the event loop belongs elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    """A threaded HTTP server with daemon threads and a listen backlog fit for bursts: the
    stdlib's default of 5 makes a burst of new connections wait a SYN retransmit (1 s), longer
    than a proxy's connect timeout."""

    daemon_threads = True
    request_queue_size = 128


#: A route answers (status, body, content type).
Route = Callable[[], tuple[int, bytes, str]]

TEXT = "text/plain; charset=utf-8"


def serve(host: str, port: int, routes: Mapping[str, Route], name: str = "httpd") -> ThreadingHTTPServer:
    """Serve GET `routes` on host:port in a daemon thread; `shutdown()` the result to stop."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            status, body, content_type = route() if route else (404, b"not found\n", TEXT)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server
