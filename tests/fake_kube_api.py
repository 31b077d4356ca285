"""An in-process fake Kubernetes API server for tests (there is no kube-apiserver on test machines).

It speaks enough of the real wire protocol for the official `kubernetes` Python client to be pointed at it
unchanged (`Configuration(host=fake.url)`): ConfigMaps (core v1: get, list, watch, create, replace, delete)
and Leases (coordination.k8s.io/v1: get, list, create, replace, delete, what leader election needs).

What it models, because the code under test depends on it:
- one global, monotonic resourceVersion shared by every object, bumped by every write;
- a history of watch events, so a watch can resume from a resourceVersion, and a "history horizon" below
  which a resume gets the 410 "Expired" ERROR event a real API server sends once its watch cache moved on;
- optimistic concurrency: a PUT carrying a stale metadata.resourceVersion gets 409 Conflict;
- failures: watch streams ended by the server (`close_watches`), history expiry (`expire_history`),
  and a crashed server that comes back on the same port with its state (`go_down` / `come_up`).

Pure standard library. Every connection and thread is ended by `stop()` so pytest, which runs with
warnings as errors, sees no unclosed socket.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import json
import re
import select
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

JsonObj = dict[str, Any]

# A watcher re-checks at least this often whether its client went away, so an abandoned watch does not
# keep a server thread alive until the next event.
_WATCH_POLL_S = 0.25


@dataclass(frozen=True)
class _Kind:
    """One served resource type and where it lives in the URL space."""

    resource: str  # plural, as in the URL: "configmaps"
    kind: str  # "ConfigMap"
    group: str  # "" for the core group
    api_version: str  # "v1" or "coordination.k8s.io/v1"
    route: re.Pattern[str]

    @property
    def qualified(self) -> str:
        """How the API server names the resource in error messages: `leases.coordination.k8s.io`."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


CONFIGMAPS = _Kind(
    "configmaps",
    "ConfigMap",
    "",
    "v1",
    re.compile(r"/api/v1/namespaces/(?P<ns>[^/]+)/configmaps(?:/(?P<name>[^/]+))?"),
)
LEASES = _Kind(
    "leases",
    "Lease",
    "coordination.k8s.io",
    "coordination.k8s.io/v1",
    re.compile(r"/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/leases(?:/(?P<name>[^/]+))?"),
)
_KINDS = (CONFIGMAPS, LEASES)

# Top-level fields that are not the object's payload; everything else ("data", "spec", ...) is stored as sent.
_ENVELOPE = frozenset({"kind", "apiVersion", "metadata", "status"})


def status(code: int, reason: str, message: str, details: JsonObj | None = None) -> JsonObj:
    """A `Status` object, the body of every API error (and of watch ERROR events)."""
    body: JsonObj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


def _details(kind: _Kind, name: str) -> JsonObj:
    details: JsonObj = {"name": name, "kind": kind.resource}
    if kind.group:
        details["group"] = kind.group
    return details


def _not_found(kind: _Kind, name: str) -> JsonObj:
    return status(404, "NotFound", f'{kind.qualified} "{name}" not found', _details(kind, name))


def _name_from_field_selector(selector: str) -> str | None:
    """The name a `metadata.name=NAME` (or `==`) field selector asks for; other selectors are ignored."""
    for term in selector.split(","):
        field, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and not field.endswith("!") and field.strip() == "metadata.name":
            return value.strip()
    return None


@dataclass(frozen=True)
class _Event:
    """One write, as a watcher sees it: `object` is the object as it was right after the write."""

    rv: int
    kind: _Kind
    namespace: str
    name: str
    type: str  # ADDED, MODIFIED or DELETED
    object: JsonObj


class _ClusterState:
    """Everything the API server knows. One lock guards it all; its condition wakes watchers on changes.

    Survives `go_down()` / `come_up()`, like etcd behind a restarted API server.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()  # reentrant lock underneath
        self.rv = 0
        self.objects: dict[_Kind, dict[tuple[str, str], JsonObj]] = {kind: {} for kind in _KINDS}
        self.history: list[_Event] = []  # sorted by rv, everything after `horizon`
        self.horizon = 0  # a watch from an rv older than this gets 410 Expired
        # Bumped to end open watch streams: `watch_generation` cleanly (terminating chunk, as on a
        # server-side timeout), `server_epoch` abruptly (the server process went away).
        self.watch_generation = 0
        self.server_epoch = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    # -- reads -------------------------------------------------------------------------------------------------

    def get(self, kind: _Kind, namespace: str, name: str) -> JsonObj | None:
        with self.cond:
            obj = self.objects[kind].get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, kind: _Kind, namespace: str, name: str | None) -> tuple[list[JsonObj], int]:
        """Matching objects (sorted by name, as etcd returns them) and the rv the list is consistent at."""
        with self.cond:
            items = [
                copy.deepcopy(obj)
                for (ns, obj_name), obj in sorted(self.objects[kind].items())
                if ns == namespace and (name is None or obj_name == name)
            ]
            return items, self.rv

    def events_after(self, rv: int, kind: _Kind, namespace: str, name: str | None) -> list[_Event]:
        with self.cond:
            start = bisect.bisect_right(self.history, rv, key=lambda event: event.rv)
            return [
                event
                for event in self.history[start:]
                if event.kind == kind and event.namespace == namespace and (name is None or event.name == name)
            ]

    # -- writes: each one bumps the global rv and records a watch event ----------------------------------------

    def _write(
        self, kind: _Kind, namespace: str, name: str, content: JsonObj, extra_metadata: JsonObj
    ) -> tuple[str, JsonObj]:
        """Create or replace (namespace, name) with `content` as its payload; returns (event type, object)."""
        with self.cond:
            self.rv += 1
            old = self.objects[kind].get((namespace, name))
            metadata: JsonObj = {
                "name": name,
                "namespace": namespace,
                "resourceVersion": str(self.rv),
                # uid and creationTimestamp identify this incarnation of the object: kept across updates.
                "uid": old["metadata"]["uid"] if old else str(uuid.uuid4()),
                "creationTimestamp": (
                    old["metadata"]["creationTimestamp"] if old else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                ),
                **extra_metadata,  # labels and annotations
            }
            obj: JsonObj = {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": metadata, **content}
            self.objects[kind][(namespace, name)] = obj
            event_type = "ADDED" if old is None else "MODIFIED"
            self._record(kind, event_type, obj)
            return event_type, copy.deepcopy(obj)

    def _record(self, kind: _Kind, event_type: str, obj: JsonObj) -> None:
        meta = obj["metadata"]
        self.history.append(_Event(self.rv, kind, meta["namespace"], meta["name"], event_type, copy.deepcopy(obj)))
        self.cond.notify_all()

    def create(self, kind: _Kind, namespace: str, body: JsonObj) -> tuple[int, JsonObj]:
        name = str((body.get("metadata") or {}).get("name") or "")
        if not name:
            return 422, status(422, "Invalid", f"{kind.kind} is invalid: metadata.name: Required value")
        with self.cond:
            if (namespace, name) in self.objects[kind]:
                message = f'{kind.qualified} "{name}" already exists'
                return 409, status(409, "AlreadyExists", message, _details(kind, name))
            _, obj = self._write(kind, namespace, name, _content(body), _extra_metadata(body))
            return 201, obj

    def replace(self, kind: _Kind, namespace: str, name: str, body: JsonObj) -> tuple[int, JsonObj]:
        metadata = body.get("metadata") or {}
        if metadata.get("name", name) != name:
            return 400, status(400, "BadRequest", "the name of the object does not match the name on the URL")
        with self.cond:
            old = self.objects[kind].get((namespace, name))
            if old is None:
                return 404, _not_found(kind, name)
            # Optimistic concurrency: an update must be based on the version it read. No resourceVersion in
            # the body means an unconditional update, as the real API server allows for these kinds.
            sent_rv = metadata.get("resourceVersion")
            if sent_rv is not None and str(sent_rv) != old["metadata"]["resourceVersion"]:
                message = (
                    f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again"
                )
                return 409, status(409, "Conflict", message, _details(kind, name))
            _, obj = self._write(kind, namespace, name, _content(body), _extra_metadata(body))
            return 200, obj

    def upsert(self, kind: _Kind, namespace: str, name: str, content: JsonObj) -> JsonObj:
        with self.cond:
            old = self.objects[kind].get((namespace, name))
            kept = {key: old["metadata"][key] for key in ("labels", "annotations") if old and key in old["metadata"]}
            return self._write(kind, namespace, name, content, kept)[1]

    def delete(self, kind: _Kind, namespace: str, name: str) -> tuple[int, JsonObj]:
        with self.cond:
            obj = self.objects[kind].pop((namespace, name), None)
            if obj is None:
                return 404, _not_found(kind, name)
            # A DELETED event carries the object's last state at the rv of the deletion.
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._record(kind, "DELETED", obj)
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": _details(kind, name) | {"uid": obj["metadata"]["uid"]},
            }

    # -- watch control -----------------------------------------------------------------------------------------

    def wait_for_change(self, rv: int, generation: int, epoch: int, timeout: float) -> None:
        """Wait (up to timeout) for a write after rv, or for the watch to be closed or dropped."""
        with self.cond:
            self.cond.wait_for(
                lambda: self.rv > rv or self.watch_generation != generation or self.server_epoch != epoch,
                timeout=max(0.0, timeout),
            )

    def close_watches(self) -> None:
        with self.cond:
            self.watch_generation += 1
            self.cond.notify_all()

    def expire_history(self) -> None:
        with self.cond:
            self.horizon = self.rv
            self.history.clear()
            self.close_watches()

    def drop_watches(self) -> None:
        with self.cond:
            self.server_epoch += 1
            self.cond.notify_all()


def _content(body: JsonObj) -> JsonObj:
    return {key: value for key, value in body.items() if key not in _ENVELOPE}


def _extra_metadata(body: JsonObj) -> JsonObj:
    metadata = body.get("metadata") or {}
    return {key: metadata[key] for key in ("labels", "annotations") if metadata.get(key)}


class _Server(ThreadingHTTPServer):
    """Tracks its connections so a crash or stop can cut every one of them, then joins every handler thread."""

    daemon_threads = False  # tracked, so server_close() joins them: no thread outlives stop()
    block_on_close = True

    def __init__(self, port: int, state: _ClusterState, bookmark_interval_s: float) -> None:
        self.state = state
        self.bookmark_interval_s = bookmark_interval_s
        self._connections_lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        # Forget the socket before it is closed, so drop_connections() never touches a closed socket.
        with self._connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut every connection: blocked reads see EOF, writes fail; the handler threads then exit."""
        with self._connections_lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):  # already gone
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client (or go_down) cutting a connection mid-request is routine here, not worth a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: keep-alive connections (as urllib3 pools them) and chunked watch streams.
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        with state.cond:
            state.requests.append((method, url.path, query))
        body = self._read_body()

        for kind in _KINDS:
            match = kind.route.fullmatch(url.path)
            if match:
                break
        else:
            self._send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            return
        namespace = unquote(match["ns"])
        name = unquote(match["name"]) if match["name"] else None

        if method in ("POST", "PUT") and not isinstance(body, dict):
            self._send_json(400, status(400, "BadRequest", "the request body is not a JSON object"))
        elif method == "GET" and name is None and query.get("watch") in ("true", "1"):
            self._serve_watch(kind, namespace, query)
        elif method == "GET" and name is None:
            selected = _name_from_field_selector(query.get("fieldSelector", ""))
            items, rv = state.list_objects(kind, namespace, selected)
            self._send_json(
                200,
                {
                    "kind": f"{kind.kind}List",
                    "apiVersion": kind.api_version,
                    "metadata": {"resourceVersion": str(rv)},
                    "items": items,
                },
            )
        elif method == "GET":
            assert name is not None
            obj = state.get(kind, namespace, name)
            if obj is None:
                self._send_json(404, _not_found(kind, name))
            else:
                self._send_json(200, obj)
        elif method == "POST" and name is None:
            self._send_json(*state.create(kind, namespace, body))
        elif method == "PUT" and name is not None:
            self._send_json(*state.replace(kind, namespace, name, body))
        elif method == "DELETE" and name is not None:
            self._send_json(*state.delete(kind, namespace, name))
        else:
            self._send_json(405, status(405, "MethodNotAllowed", f"{method} is not supported on {url.path}"))

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        try:
            return json.loads(self.rfile.read(length))
        except ValueError:
            return None

    def _send_json(self, code: int, body: JsonObj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # -- watch -------------------------------------------------------------------------------------------------

    def _serve_watch(self, kind: _Kind, namespace: str, query: dict[str, str]) -> None:
        """A watch: one JSON event per line in a chunked response, until a timeout, close_watches or a crash."""
        state = self.server.state
        name = _name_from_field_selector(query.get("fieldSelector", ""))
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        now = time.monotonic()
        deadline = now + float(query["timeoutSeconds"]) if "timeoutSeconds" in query else float("inf")
        next_bookmark = now + self.server.bookmark_interval_s

        since = query.get("resourceVersion", "")
        if since and not since.isdigit():
            self._send_json(400, status(400, "BadRequest", f"invalid resource version: {since!r}"))
            return
        first: list[JsonObj]
        with state.cond:
            generation, epoch = state.watch_generation, state.server_epoch
            if since in ("", "0"):
                # No starting point: the current state first, as synthetic ADDED events, then changes.
                items, cursor = state.list_objects(kind, namespace, name)
                first = [{"type": "ADDED", "object": obj} for obj in items]
            elif int(since) < state.horizon:
                message = f"too old resource version: {since} ({state.horizon})"
                first = [{"type": "ERROR", "object": status(410, "Expired", message)}]
                cursor = -1  # the stream ends after the error
            else:
                cursor = int(since)
                first = []  # everything after `since` is replayed from history by the loop below

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        try:
            for initial in first:
                self._send_chunk(initial)
            while cursor >= 0:
                wake_at = min(deadline, next_bookmark, time.monotonic() + _WATCH_POLL_S)
                with state.cond:
                    state.wait_for_change(cursor, generation, epoch, wake_at - time.monotonic())
                    if state.server_epoch != epoch:
                        # Crashed: the connection is cut without the terminating chunk.
                        self.close_connection = True
                        return
                    events = state.events_after(cursor, kind, namespace, name)
                    cursor = state.rv  # everything up to here has been scanned: what a BOOKMARK may promise
                    closing = state.watch_generation != generation
                for event in events:
                    self._send_chunk({"type": event.type, "object": event.object})
                now = time.monotonic()
                if closing or now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    bookmark = {
                        "kind": kind.kind,
                        "apiVersion": kind.api_version,
                        "metadata": {"resourceVersion": str(cursor)},
                    }
                    self._send_chunk({"type": "BOOKMARK", "object": bookmark})
                    next_bookmark = now + self.server.bookmark_interval_s
                if self._peer_closed():
                    self.close_connection = True
                    return
            self.wfile.write(b"0\r\n\r\n")  # the terminating chunk: a clean end of the stream
        except OSError:
            self.close_connection = True  # the client went away, or go_down()/stop() cut the connection

    def _send_chunk(self, event: JsonObj) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _peer_closed(self) -> bool:
        """Whether the client closed its end (a watching client sends nothing, so readable means EOF)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True


class FakeKubeApi:
    """The fake API server: start it, point a `kubernetes.client.Configuration(host=fake.url)` at it."""

    def __init__(self, port: int = 0, bookmark_interval_s: float = 1.0) -> None:
        self._port = port
        self._bookmark_interval_s = bookmark_interval_s
        self._state = _ClusterState()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> FakeKubeApi:
        """Listen on 127.0.0.1 (a free port the first time, the same port after that)."""
        if self._server is None:
            self._server = _Server(self._port, self._state, self._bookmark_interval_s)
            self._port = self._server.server_address[1]
            # A short poll interval makes shutdown() (which waits for the accept loop to notice) prompt.
            self._serve_thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kube-api", daemon=True
            )
            self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, cut every connection (watch streams included) and join every server thread."""
        server, thread = self._server, self._serve_thread
        if server is None or thread is None:
            return
        self._server = self._serve_thread = None
        server.shutdown()  # no new connections from here on
        self._state.drop_watches()  # watchers stop writing...
        server.drop_connections()  # ...and idle keep-alive connections see EOF
        server.server_close()  # closes the listening socket and joins the handler threads
        thread.join()

    def go_down(self) -> None:
        """Crash: stop listening and drop every connection. State is kept for come_up()."""
        self.stop()

    def come_up(self) -> None:
        """Listen again on the same port, with the same objects, history and resourceVersion."""
        self.start()

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def connection_count(self) -> int:
        """Connections the server currently holds open (0 when down or stopped)."""
        server = self._server
        if server is None:
            return 0
        with server._connections_lock:
            return len(server.connections)

    # -- state, as a test sets it up -------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion."""
        with self._state.cond:
            return str(self._state.rv)

    def set_configmap(self, namespace: str, name: str, data: dict[str, str]) -> JsonObj:
        """Create (ADDED) or update (MODIFIED) a ConfigMap's data; returns the stored object."""
        return self._state.upsert(CONFIGMAPS, namespace, name, {"data": dict(data)})

    def delete_configmap(self, namespace: str, name: str) -> bool:
        """Delete a ConfigMap (DELETED event); False if there was none."""
        return self._state.delete(CONFIGMAPS, namespace, name)[0] == 200

    def get_configmap(self, namespace: str, name: str) -> JsonObj | None:
        return self._state.get(CONFIGMAPS, namespace, name)

    def get_lease(self, namespace: str, name: str) -> JsonObj | None:
        return self._state.get(LEASES, namespace, name)

    def close_watches(self) -> None:
        """End every open watch stream now, cleanly, as an API server does on a timeout."""
        self._state.close_watches()

    def expire_history(self) -> None:
        """Forget history: a watch from any rv older than the current one gets 410. Open watches are closed."""
        self._state.expire_history()

    # -- request log -----------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """Every request so far, as (method, path, query), oldest first (a copy)."""
        with self._state.cond:
            return list(self._state.requests)

    def count(self, method: str, path_prefix: str, watch: bool | None = None) -> int:
        """How many requests had this method and a path starting with path_prefix (watches only, or none)."""
        return sum(
            1
            for req_method, path, query in self.requests
            if req_method == method
            and path.startswith(path_prefix)
            and (watch is None or (query.get("watch") in ("true", "1")) == watch)
        )
