"""Mimir's runtime overrides ConfigMap, followed through the Kubernetes API.

The official client is blocking, so the list/watch loop runs in a thread and hands events to
the event loop. Done the way controllers do it: list, then watch from the list's
resourceVersion with bookmarks; a watch that ends is resumed from the last version seen; 410
Gone means that version is too old, so list again; network errors back off (tenacity) and list
again; and a periodic full re-list repairs anything missed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from tenacity import Retrying, retry_if_exception, wait_exponential_jitter

from mimir_edge.sync.sources import Loaded, Missing, OverridesDocuments, SourceEvent, Unreadable

log = structlog.get_logger("overrides-sync.kubernetes")

HTTP_GONE = 410


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in (None, 0, 429) or exc.status >= 500 or exc.status == HTTP_GONE
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


class ConfigMapSource:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        key: str,
        *,
        defaults_key: str | None = None,
        watch_timeout_s: int = 300,
        resync_s: float = 300.0,
        backoff_max_s: float = 10.0,
        on_restart: Callable[[str], None] = lambda reason: None,
    ):
        self._api = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.key = key
        self.defaults_key = defaults_key
        self.watch_timeout_s = watch_timeout_s
        self.resync_s = resync_s
        self.backoff_max_s = backoff_max_s
        self._on_restart = on_restart
        self._stop = threading.Event()
        self._last_digest: str | None = None

    def describe(self) -> str:
        return f"configmap {self.namespace}/{self.name} key {self.key}"

    async def events(self) -> AsyncIterator[SourceEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[SourceEvent | BaseException] = asyncio.Queue()

        def emit(event: SourceEvent | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def run() -> None:
            try:
                self._run(emit)
            except BaseException as exc:  # not retryable (a 403, a bug): the watch is over
                emit(exc)

        thread = threading.Thread(target=run, name="configmap-watch", daemon=True)
        thread.start()
        try:
            while True:
                event = await queue.get()
                if isinstance(event, BaseException):
                    # Raised here, where the process supervises its tasks: waiting on a queue no
                    # thread feeds any more would look alive and never sync again.
                    raise event
                yield event
        finally:
            self._stop.set()

    # --- the watch thread -------------------------------------------------------------------

    def _run(self, emit: Callable[[SourceEvent], None]) -> None:
        while not self._stop.is_set():
            for attempt in Retrying(
                wait=wait_exponential_jitter(initial=0.2, max=self.backoff_max_s),
                retry=retry_if_exception(_retryable),
                before_sleep=self._before_retry,
                reraise=True,
            ):
                with attempt:
                    version = self._list(emit)
                    self._watch(emit, version)
            self._restarted("resync", None)

    def _before_retry(self, state: Any) -> None:
        error = state.outcome.exception() if state.outcome else None
        gone = isinstance(error, ApiException) and error.status == HTTP_GONE
        self._restarted("gone" if gone else "error", error)

    def _restarted(self, reason: str, error: BaseException | None) -> None:
        log.warning("configmap watch restarting", reason=reason, error=str(error) if error else None)
        self._on_restart(reason)

    def _list(self, emit: Callable[[SourceEvent], None]) -> str:
        reply = self._api.list_namespaced_config_map(
            self.namespace, field_selector=f"metadata.name={self.name}", _request_timeout=10
        )
        items = reply.items or []
        if items:
            meta = items[0].metadata
            self._deliver(emit, items[0].data or {}, meta.resource_version if meta else None, resync=True)
        else:
            self._deliver(emit, None, None, resync=True)
        return str(reply.metadata.resource_version if reply.metadata else "")

    def _watch(self, emit: Callable[[SourceEvent], None], version: str) -> None:
        """Watch until the next resync; raises on errors (410 included) for `_run` to handle."""
        resync_at = time.monotonic() + self.resync_s
        while not self._stop.is_set():
            remaining = resync_at - time.monotonic()
            if remaining <= 0:
                return
            stream = watch.Watch()
            timeout = max(1, min(self.watch_timeout_s, int(remaining)))
            for event in stream.stream(
                self._api.list_namespaced_config_map,
                self.namespace,
                field_selector=f"metadata.name={self.name}",
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout,
                _request_timeout=(10, timeout + 30),
            ):
                if self._stop.is_set():
                    stream.stop()
                    return
                kind = event["type"]
                obj: dict[str, Any] = event["raw_object"]
                version = obj.get("metadata", {}).get("resourceVersion") or version
                if kind in ("ADDED", "MODIFIED"):
                    self._deliver(emit, obj.get("data") or {}, version, resync=False)
                elif kind == "DELETED":
                    self._deliver(emit, None, version, resync=False)
            self._restarted("closed", None)

    def _deliver(
        self, emit: Callable[[SourceEvent], None], data: dict[str, str] | None, version: str | None, *, resync: bool
    ) -> None:
        if data is None:
            if self._last_digest != "missing":
                emit(Missing(f"configmap {self.namespace}/{self.name} does not exist"))
                self._last_digest = "missing"
            return
        if self.key not in data:
            emit(Unreadable(f"configmap {self.namespace}/{self.name} has no key {self.key!r}"))
            self._last_digest = "unreadable"
            return
        documents = OverridesDocuments(data[self.key], data.get(self.defaults_key) if self.defaults_key else None)
        if documents.digest != self._last_digest or resync:
            self._last_digest = documents.digest
            emit(Loaded(documents, f"{self.describe()} resourceVersion {version}", resync=resync))
