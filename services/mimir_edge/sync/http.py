"""overrides-sync's own HTTP endpoint: /metrics, /healthz (alive), /readyz (synced and Redis up)."""

from __future__ import annotations

from collections.abc import Callable
from http.server import ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from mimir_edge import httpd


def serve(host: str, port: int, registry: CollectorRegistry, ready: Callable[[], bool]) -> ThreadingHTTPServer:
    def readyz() -> tuple[int, bytes, str]:
        ok = ready()
        return (200, b"ready\n", httpd.TEXT) if ok else (503, b"not synced\n", httpd.TEXT)

    return httpd.serve(
        host,
        port,
        {
            "/metrics": lambda: (200, generate_latest(registry), CONTENT_TYPE_LATEST),
            "/healthz": lambda: (200, b"ok\n", httpd.TEXT),
            "/readyz": readyz,
        },
        name="sync-http",
    )
