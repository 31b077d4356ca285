"""The admin HTTP server of an RLS replica: JSON API under /api/, the Admin UI at /.

Threaded (stdlib http.server) with a blocking Redis client, so admin reads never run on the
event loop that answers Envoy. Reads are open; every mutating call needs a bearer token, and
without a configured token the API is read-only.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import structlog
import yaml

from mimir_edge import httpd
from mimir_edge.admin import overrides
from mimir_edge.admin.view import SORT_KEYS, FleetView
from mimir_edge.core.errors import InvalidTenant, StoreUnavailable
from mimir_edge.core.tenant import validate_tenant_id
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.store.client import translated_errors

log = structlog.get_logger("rls.admin")
audit_log = structlog.get_logger("audit")

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
MAX_BODY = 64 * 1024
METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "POST", "PATCH", "OPTIONS"})


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@dataclass
class Tokens:
    """Bearer tokens: ADMIN_TOKEN (named "admin") and ADMIN_TOKEN_FILE, one `name:token` or bare
    token per line (named after the file's line). The file is re-read when it changes, so a
    rotated Kubernetes Secret takes effect without a restart."""

    token: str = ""
    path: str = ""
    _loaded: dict[str, str] = field(default_factory=dict)
    _signature: tuple[float, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def configured(self) -> bool:
        return bool(self.token or self.path)

    def _file_tokens(self) -> dict[str, str]:
        if not self.path:
            return {}
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError:
                return self._loaded  # a Secret being swapped: keep the last tokens
            if (st.st_mtime, st.st_size) != self._signature:
                loaded = {}
                for number, line in enumerate(Path(self.path).read_text().splitlines(), start=1):
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    name, sep, secret = line.partition(":")
                    loaded[secret.strip() if sep else name] = name.strip() if sep else f"token-line-{number}"
                self._loaded, self._signature = loaded, (st.st_mtime, st.st_size)
            return self._loaded

    def who(self, presented: str) -> str | None:
        """The name of the token presented, or None. Compares against every token in constant time."""
        found = None
        candidates = dict(self._file_tokens())
        if self.token:
            candidates[self.token] = "admin"
        for secret, name in candidates.items():
            if hmac.compare_digest(secret.encode(), presented.encode()):
                found = name
        return found


@dataclass
class AdminContext:
    view: FleetView
    redis: Any  # SyncRedis
    tokens: Tokens
    replica_id: str
    health: Callable[[], tuple[int, dict[str, Any]]]
    ready: Callable[[], tuple[int, dict[str, Any]]]
    config: Callable[[], dict[str, Any]]
    current_limits: Callable[[str], BucketLimits]


def _int_param(params: Mapping[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    values = params.get(name)
    if not values:
        return default
    text = values[-1]
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(400, f"query parameter {name} must be an integer from {low} to {high}")
    return int(text)


def _choice(params: Mapping[str, list[str]], name: str, default: str, choices: tuple[str, ...]) -> str:
    values = params.get(name)
    if not values:
        return default
    if values[-1] not in choices:
        raise ApiError(400, f"query parameter {name} must be one of {', '.join(choices)}")
    return values[-1]


def _query(params: Mapping[str, list[str]]) -> str:
    text = (params.get("q") or [""])[-1]
    if len(text) > 200:
        raise ApiError(400, "query parameter q must be at most 200 characters")
    return text


def allowed_methods(path: str) -> tuple[str, ...]:
    if path.startswith("/api/tenants/") and path.endswith("/override"):
        return ("GET", "HEAD", "PUT", "DELETE")
    return ("GET", "HEAD")


def _tenant(raw: str) -> str:
    try:
        return validate_tenant_id(unquote(raw))
    except InvalidTenant as exc:
        raise ApiError(400, f"invalid tenant id: {exc}") from None


class Api:
    def __init__(self, ctx: AdminContext, *, on_request: Callable[[str, int], None] | None = None):
        self.ctx = ctx
        self.on_request = on_request or (lambda method, code: None)

    def get(self, path: str, params: Mapping[str, list[str]]) -> tuple[int, Any]:
        ctx = self.ctx
        if path == "/api/health":
            return ctx.health()
        if path == "/api/ready":
            return ctx.ready()
        if path == "/api/config":
            return 200, ctx.config()
        if path == "/api/openapi.json":
            return 200, openapi_document()
        if path == "/api/overview":
            window = _int_param(params, "window", 3600, 60, 86400)
            return 200, ctx.view.overview(window, ctx.replica_id)
        if path == "/api/tenants":
            return 200, ctx.view.tenants(
                query=_query(params),
                sort=_choice(params, "sort", "items_per_s", SORT_KEYS),
                descending=_choice(params, "order", "desc", ("asc", "desc")) == "desc",
                page=_int_param(params, "page", 1, 1, 100000),
                per_page=_int_param(params, "per_page", 50, 1, 500),
                window_s=_int_param(params, "window", 300, 60, 86400),
            )
        if path == "/api/denials":
            limit = _int_param(params, "limit", 100, 1, 1000)
            window = _int_param(params, "window", 300, 60, 86400)
            return 200, {"denials": ctx.view.denials(limit, window), "window_s": window}
        if path == "/api/overrides":
            return 200, {
                "overrides": overrides.list_overrides(ctx.redis),
                "audit": overrides.audit_entries(ctx.redis),
                "writable": ctx.tokens.configured,
            }
        if path.startswith("/api/tenants/"):
            rest = path[len("/api/tenants/") :]
            if rest.endswith("/override"):
                tenant = _tenant(rest[: -len("/override")])
                found = overrides.get_override(ctx.redis, tenant)
                if found is None:
                    raise ApiError(404, f"no emergency override for tenant {tenant!r}")
                return 200, found
            if "/" in rest:
                raise ApiError(404, "not found")
            window = _int_param(params, "window", 3600, 60, 86400)
            return 200, ctx.view.tenant(_tenant(rest), window)
        raise ApiError(404, "not found")

    def authorize(self, headers: Mapping[str, str]) -> str:
        tokens = self.ctx.tokens
        if not tokens.configured:
            raise ApiError(403, "the admin API is read-only: no ADMIN_TOKEN or ADMIN_TOKEN_FILE is configured")
        scheme, _, presented = (headers.get("authorization") or "").partition(" ")
        who = tokens.who(presented.strip()) if scheme.lower() == "bearer" and presented.strip() else None
        if who is None:
            raise ApiError(401, "a valid bearer token is required", {"WWW-Authenticate": 'Bearer realm="mimir-edge"'})
        return who

    def mutate(self, method: str, path: str, headers: Mapping[str, str], body: bytes, client: str) -> tuple[int, Any]:
        # Only PUT and DELETE on /api/tenants/{id}/override get here (see allowed_methods).
        tenant = _tenant(path[len("/api/tenants/") : -len("/override")])
        who = self.authorize(headers)
        ctx = self.ctx
        if method == "DELETE":
            removed = overrides.delete_override(ctx.redis, tenant)
            self._audit("emergency override removed", who, client, tenant, {"removed": removed})
            if not removed:
                raise ApiError(404, f"no emergency override for tenant {tenant!r}")
            return 200, {"tenant": tenant, "removed": True}
        try:
            payload = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"body is not JSON: {exc}") from None
        try:
            parsed = overrides.parse_override(tenant, payload, ctx.current_limits(tenant))
        except overrides.InvalidOverride as exc:
            raise ApiError(400, str(exc)) from None
        stored = overrides.put_override(ctx.redis, parsed, by=who)
        self._audit(
            "emergency override set",
            who,
            client,
            tenant,
            {"mode": parsed.mode, "ttl_s": parsed.ttl_s, "reason": parsed.reason, "limits": dict(parsed.limits)},
        )
        return 200, stored

    def _audit(self, event: str, who: str, client: str, tenant: str, details: Mapping[str, Any]) -> None:
        entry = {"event": event, "by": who, "client": client, "tenant": tenant, "at_ms": int(time.time() * 1000)}
        entry |= dict(details)
        audit_log.warning(event, **{k: v for k, v in entry.items() if k != "event"})
        try:
            with translated_errors("store audit entry"):
                overrides.audit(self.ctx.redis, entry)
        except StoreUnavailable as exc:  # the change itself landed; the log line above is the record
            log.error("could not store audit entry", error=str(exc))


def openapi_document() -> dict[str, Any]:
    text = resources.files("mimir_edge.admin").joinpath("openapi.yaml").read_text()
    return yaml.safe_load(text)  # type: ignore[no-any-return]


def _static(path: str) -> tuple[bytes, str] | None:
    name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
    if "/" in name or name.startswith(".") or not name:
        return None
    suffix = Path(name).suffix
    if suffix not in STATIC_TYPES:
        return None
    item = resources.files("mimir_edge.admin").joinpath("static", name)
    if not item.is_file():
        return None
    return item.read_bytes(), STATIC_TYPES[suffix]


def serve(host: str, port: int, api: Api) -> ThreadingHTTPServer:
    """Serve the admin API and UI on host:port in daemon threads; `shutdown()` the result to stop."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "mimir-edge-admin"
        disable_nagle_algorithm = True
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] = {}) -> None:
            api.on_request(self.command if self.command in METHODS else "OTHER", status)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, payload: Any, headers: Mapping[str, str] = {}) -> None:
            body = (json.dumps(payload, sort_keys=True) + "\n").encode()
            self._send(status, body, "application/json", headers)

        def _handle(self) -> None:
            url = urlsplit(self.path)
            path = url.path
            try:
                allowed = allowed_methods(path)
                if self.command not in allowed:
                    raise ApiError(405, f"{self.command} is not allowed here", {"Allow": ", ".join(allowed)})
                if not path.startswith("/api/"):
                    static = _static(path)
                    if static is None:
                        raise ApiError(404, "not found")
                    self._send(200, static[0], static[1])
                    return
                params = parse_qs(url.query, keep_blank_values=True)
                with translated_errors(f"{self.command} {path}"):
                    if self.command in ("GET", "HEAD"):
                        status, payload = api.get(path, params)
                    else:
                        length = int(self.headers.get("Content-Length") or 0)
                        if length > MAX_BODY:
                            raise ApiError(413, f"body over {MAX_BODY} bytes")
                        body = self.rfile.read(length) if length > 0 else b""
                        headers = {k.lower(): v for k, v in self.headers.items()}
                        status, payload = api.mutate(self.command, path, headers, body, self.client_address[0])
                self._json(status, payload)
            except ApiError as exc:
                self._json(exc.status, {"error": str(exc)}, exc.headers)
            except StoreUnavailable as exc:
                self._json(503, {"error": str(exc)})
            except ValueError as exc:  # e.g. a bad Content-Length
                self._json(400, {"error": str(exc)})
            except Exception as exc:  # a bug must not kill the thread without an answer
                log.exception("admin request failed", path=path)
                self._json(500, {"error": f"internal error: {type(exc).__name__}"})

        def __getattr__(self, name: str) -> Any:
            # Every method reaches _handle (which answers 405 where it does not apply), not
            # http.server's HTML 501 page.
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

    server = httpd.Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="rls-admin", daemon=True).start()
    return server
