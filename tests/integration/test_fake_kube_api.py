"""The fake Kubernetes API server, driven by the real official `kubernetes` client (no mocks).

Every call and watch carries a `_request_timeout`, so a misbehaving server fails a test instead of hanging it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3
from kubernetes.client import (
    ApiClient,
    Configuration,
    CoordinationV1Api,
    CoreV1Api,
    V1Lease,
    V1LeaseSpec,
    V1ObjectMeta,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.watch import Watch

from tests.fake_kube_api import FakeKubeApi
from tests.waiting import wait_for

NS = "mimir"
NAME = "mimir-overrides"
SELECTOR = f"metadata.name={NAME}"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"
REQUEST_TIMEOUT = 10  # seconds; a safety net only, every test is meant to finish far sooner

Event = dict[str, Any]


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    fake = FakeKubeApi(bookmark_interval_s=0.2).start()
    yield fake
    fake.stop()


@pytest.fixture
def api_client(kube: FakeKubeApi) -> Iterator[ApiClient]:
    # no_proxy: the client honours HTTP(S)_PROXY from the environment, which must not apply to 127.0.0.1.
    client = ApiClient(Configuration(host=kube.url, no_proxy="*"))
    yield client
    client.close()  # closes the pooled keep-alive connections


@pytest.fixture
def core(api_client: ApiClient) -> CoreV1Api:
    return CoreV1Api(api_client)


@pytest.fixture
def coordination(api_client: ApiClient) -> CoordinationV1Api:
    return CoordinationV1Api(api_client)


def watch_events(
    watch: Watch, core: CoreV1Api, until: Callable[[Event], bool] | None = None, **kwargs: Any
) -> list[Event]:
    """Watch the test ConfigMap; return its events up to the first one `until` accepts, or to the stream's end."""
    events: list[Event] = []
    stream = watch.stream(
        core.list_namespaced_config_map, NS, field_selector=SELECTOR, _request_timeout=REQUEST_TIMEOUT, **kwargs
    )
    with closing(stream):  # closes the response even when we stop early
        for event in stream:
            events.append(event)
            if until is not None and until(event):
                break
    return events


def types(events: list[Event], bookmarks: bool = False) -> list[str]:
    return [event["type"] for event in events if bookmarks or event["type"] != "BOOKMARK"]


def list_rv(core: CoreV1Api) -> str:
    rv = core.list_namespaced_config_map(NS, field_selector=SELECTOR, _request_timeout=REQUEST_TIMEOUT).metadata
    assert rv is not None and rv.resource_version is not None
    return rv.resource_version


# -- list and get ----------------------------------------------------------------------------------------------


def test_list_filters_by_name_and_returns_the_global_resource_version(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"overrides.yaml": "overrides: {}\n"})
    kube.set_configmap(NS, "other", {"k": "v"})
    kube.set_configmap("elsewhere", NAME, {"k": "v"})

    result = core.list_namespaced_config_map(NS, field_selector=SELECTOR, _request_timeout=REQUEST_TIMEOUT)

    assert [item.metadata.name for item in result.items] == [NAME]
    assert result.items[0].data == {"overrides.yaml": "overrides: {}\n"}
    assert result.items[0].metadata.namespace == NS
    assert result.items[0].metadata.resource_version == "1"
    assert result.metadata.resource_version == kube.resource_version == "3"
    everything = core.list_namespaced_config_map(NS, _request_timeout=REQUEST_TIMEOUT)
    assert sorted(item.metadata.name for item in everything.items) == [NAME, "other"]
    assert kube.count("GET", CONFIGMAPS, watch=False) == 2
    assert kube.requests[0] == ("GET", CONFIGMAPS, {"fieldSelector": SELECTOR})


def test_read_returns_the_object_and_404_when_missing(kube: FakeKubeApi, core: CoreV1Api) -> None:
    created = kube.set_configmap(NS, NAME, {"a": "1"})
    updated = kube.set_configmap(NS, NAME, {"a": "2"})

    cm = core.read_namespaced_config_map(NAME, NS, _request_timeout=REQUEST_TIMEOUT)
    assert cm.data == {"a": "2"}
    assert cm.metadata.resource_version == updated["metadata"]["resourceVersion"] == "2"
    assert cm.metadata.uid == created["metadata"]["uid"]  # same object, new version

    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_config_map("missing", NS, _request_timeout=REQUEST_TIMEOUT)
    assert excinfo.value.status == 404
    assert excinfo.value.body is not None and '"reason": "NotFound"' in excinfo.value.body
    assert 'configmaps \\"missing\\" not found' in excinfo.value.body


# -- watch -----------------------------------------------------------------------------------------------------


def test_watch_from_resource_version_replays_history(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})
    rv = list_rv(core)
    kube.set_configmap(NS, NAME, {"a": "2"})
    kube.set_configmap(NS, "other", {"ignored": "by the field selector"})
    kube.delete_configmap(NS, NAME)

    watch = Watch()
    events = watch_events(watch, core, until=lambda e: e["type"] == "DELETED", resource_version=rv, timeout_seconds=2)

    assert types(events) == ["MODIFIED", "DELETED"]
    assert events[0]["object"].data == {"a": "2"}
    assert events[1]["object"].metadata.resource_version == "4"  # a deletion has its own rv
    assert watch.resource_version == "4"


def test_watch_streams_live_changes_from_another_thread(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})
    rv = list_rv(core)

    def writer() -> None:
        kube.set_configmap(NS, NAME, {"a": "2"})
        kube.delete_configmap(NS, NAME)

    # The writes start once the first bookmark has arrived: the watch is open then, so they are
    # streamed live (not replayed from history), however long the watch took to open.
    thread = threading.Thread(target=writer)

    def on_event(event: Event) -> bool:
        if event["type"] == "BOOKMARK" and thread.ident is None:  # not started yet
            thread.start()
        return event["type"] == "DELETED"

    try:
        events = watch_events(Watch(), core, until=on_event, resource_version=rv, allow_watch_bookmarks=True)
    finally:
        if thread.ident is not None:
            thread.join()

    assert types(events, bookmarks=True)[0] == "BOOKMARK"
    changes = [e for e in events if e["type"] != "BOOKMARK"]
    assert types(changes) == ["MODIFIED", "DELETED"]
    assert changes[0]["object"].data == {"a": "2"}
    assert kube.count("GET", CONFIGMAPS, watch=True) == 1


def test_watch_without_resource_version_starts_with_current_objects(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})

    # After the initial ADDED arrives the watch is registered, so a write made now must be streamed live.
    def on_event(event: Event) -> bool:
        if event["type"] == "ADDED":
            kube.set_configmap(NS, NAME, {"a": "2"})
        return event["type"] == "MODIFIED"

    events = watch_events(Watch(), core, until=on_event, timeout_seconds=3)

    assert types(events) == ["ADDED", "MODIFIED"]
    assert [e["object"].data for e in events] == [{"a": "1"}, {"a": "2"}]


def test_bookmarks_advance_the_watch_resource_version(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})
    rv = list_rv(core)
    kube.set_configmap(NS, "other", {"b": "1"})  # bumps the global rv; not an event for this watch

    watch = Watch()
    events = watch_events(
        watch, core, until=lambda e: e["type"] == "BOOKMARK", resource_version=rv, allow_watch_bookmarks=True
    )

    assert types(events, bookmarks=True) == ["BOOKMARK"]
    assert events[0]["raw_object"]["metadata"] == {"resourceVersion": "2"}
    assert watch.resource_version == "2" != rv
    assert kube.requests[-1][2]["allowWatchBookmarks"] == "true"


def test_watch_ends_after_timeout_seconds(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})
    rv = list_rv(core)

    started = time.monotonic()
    events = watch_events(Watch(), core, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=1)
    elapsed = time.monotonic() - started

    # Not before the timeout; and well before the 10 s safety net, which a server that ignored
    # timeoutSeconds would hit instead (its bookmarks keep the stream going otherwise).
    assert 0.9 <= elapsed < 8
    assert types(events) == []
    assert len(events) >= 2  # bookmarks every 0.2 s meanwhile
    assert kube.count("GET", CONFIGMAPS, watch=True) == 1  # timeout_seconds: the client does not re-watch


def test_close_watches_ends_the_stream_cleanly(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})

    def on_event(event: Event) -> bool:
        kube.close_watches()
        return False

    started = time.monotonic()
    events = watch_events(Watch(), core, until=on_event, timeout_seconds=30)

    assert types(events) == ["ADDED"]
    assert time.monotonic() - started < 20  # closed, not ended by timeout_seconds=30


def test_watch_from_expired_resource_version_raises_410(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})
    rv = list_rv(core)
    kube.set_configmap(NS, NAME, {"a": "2"})
    kube.expire_history()

    # timeout_seconds disables the client's own one retry after a 410: the ERROR event surfaces at once.
    with pytest.raises(ApiException) as excinfo:
        watch_events(Watch(), core, resource_version=rv, timeout_seconds=2)
    assert excinfo.value.status == 410
    assert excinfo.value.reason == "Expired: too old resource version: 1 (2)"
    assert kube.count("GET", CONFIGMAPS, watch=True) == 1

    # A watch from the current rv (what a relist returns) is fine.
    assert watch_events(Watch(), core, resource_version=list_rv(core), timeout_seconds=1) == []


def test_without_timeout_seconds_the_client_retries_once_after_410(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})
    rv = list_rv(core)
    kube.set_configmap(NS, NAME, {"a": "2"})
    kube.expire_history()

    with pytest.raises(ApiException) as excinfo:
        watch_events(Watch(), core, resource_version=rv)
    assert excinfo.value.status == 410
    assert kube.count("GET", CONFIGMAPS, watch=True) == 2


def test_expire_history_closes_open_watches(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})

    def on_event(event: Event) -> bool:
        kube.set_configmap(NS, "other", {"b": "1"})
        kube.expire_history()
        return False

    watch = Watch()
    events = watch_events(watch, core, until=on_event, timeout_seconds=30)

    assert types(events) == ["ADDED"]
    # Resuming from the last rv this watch saw is now too old.
    with pytest.raises(ApiException) as excinfo:
        watch_events(Watch(), core, resource_version=watch.resource_version, timeout_seconds=1)
    assert excinfo.value.status == 410


# -- leases ----------------------------------------------------------------------------------------------------


def lease(name: str, holder: str, resource_version: str | None = None) -> V1Lease:
    now = datetime.now(UTC)
    return V1Lease(
        metadata=V1ObjectMeta(name=name, namespace=NS, resource_version=resource_version),
        spec=V1LeaseSpec(
            holder_identity=holder, lease_duration_seconds=15, acquire_time=now, renew_time=now, lease_transitions=0
        ),
    )


def test_lease_create_read_replace_with_optimistic_concurrency(
    kube: FakeKubeApi, coordination: CoordinationV1Api
) -> None:
    created = coordination.create_namespaced_lease(NS, lease("leader", "pod-a"), _request_timeout=REQUEST_TIMEOUT)
    assert created.metadata.resource_version == "1"
    assert created.spec.holder_identity == "pod-a"

    with pytest.raises(ApiException) as excinfo:
        coordination.create_namespaced_lease(NS, lease("leader", "pod-b"), _request_timeout=REQUEST_TIMEOUT)
    assert excinfo.value.status == 409
    assert excinfo.value.body is not None and '"reason": "AlreadyExists"' in excinfo.value.body

    current = coordination.read_namespaced_lease("leader", NS, _request_timeout=REQUEST_TIMEOUT)
    assert current.spec.holder_identity == "pod-a"
    assert current.spec.renew_time == created.spec.renew_time  # datetimes survive the round trip

    current.spec.renew_time = datetime.now(UTC)
    renewed = coordination.replace_namespaced_lease("leader", NS, current, _request_timeout=REQUEST_TIMEOUT)
    assert renewed.metadata.resource_version == "2"
    assert renewed.metadata.uid == created.metadata.uid

    # pod-b still holds the version it read before the renewal: its takeover must fail.
    stale = lease("leader", "pod-b", resource_version="1")
    with pytest.raises(ApiException) as excinfo:
        coordination.replace_namespaced_lease("leader", NS, stale, _request_timeout=REQUEST_TIMEOUT)
    assert excinfo.value.status == 409
    assert excinfo.value.body is not None and '"reason": "Conflict"' in excinfo.value.body

    stored = kube.get_lease(NS, "leader")
    assert stored is not None
    assert stored["kind"] == "Lease" and stored["apiVersion"] == "coordination.k8s.io/v1"
    assert stored["metadata"]["resourceVersion"] == "2"
    assert stored["spec"]["holderIdentity"] == "pod-a"
    assert stored["spec"]["leaseDurationSeconds"] == 15
    assert kube.get_lease(NS, "missing") is None

    with pytest.raises(ApiException) as excinfo:
        coordination.read_namespaced_lease("missing", NS, _request_timeout=REQUEST_TIMEOUT)
    assert excinfo.value.status == 404
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
    assert kube.count("PUT", lease_path) == 2
    assert kube.count("POST", lease_path) == 2


# -- outages ---------------------------------------------------------------------------------------------------


def test_go_down_and_come_up_on_the_same_port_with_state_kept(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})
    rv = list_rv(core)  # leaves a pooled keep-alive connection behind
    port = kube.port

    kube.go_down()
    with pytest.raises(urllib3.exceptions.HTTPError):  # MaxRetryError after connection refused
        core.list_namespaced_config_map(NS, field_selector=SELECTOR, _request_timeout=2)

    kube.come_up()
    assert kube.port == port
    assert list_rv(core) == rv
    assert core.read_namespaced_config_map(NAME, NS, _request_timeout=REQUEST_TIMEOUT).data == {"a": "1"}


def test_go_down_cuts_an_open_watch(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})

    def on_event(event: Event) -> bool:
        kube.go_down()
        return False

    with pytest.raises(urllib3.exceptions.ProtocolError):  # the stream ends without its terminating chunk
        watch_events(Watch(), core, until=on_event, timeout_seconds=30)

    kube.come_up()
    assert types(watch_events(Watch(), core, timeout_seconds=1)) == ["ADDED"]


def test_stop_ends_every_connection_and_thread(kube: FakeKubeApi, core: CoreV1Api) -> None:
    kube.set_configmap(NS, NAME, {"a": "1"})
    stopped_in: list[float] = []

    with socket.create_connection(("127.0.0.1", kube.port), timeout=REQUEST_TIMEOUT) as idle:  # sends nothing

        def on_event(event: Event) -> bool:
            # The idle one and the watch; the accept of the idle one is asynchronous.
            wait_for(lambda: kube.connection_count == 2, what="2 connections accepted")
            started = time.monotonic()
            kube.stop()
            stopped_in.append(time.monotonic() - started)
            return False

        with pytest.raises(urllib3.exceptions.ProtocolError):
            watch_events(Watch(), core, until=on_event, timeout_seconds=30)
        assert idle.recv(1) == b""  # the server closed the idle connection too

    assert stopped_in and stopped_in[0] < 8  # cut the connections rather than waiting on clients that never end
    assert kube.connection_count == 0
    assert not [t.name for t in threading.enumerate() if "process_request" in t.name or t.name == "fake-kube-api"]
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", kube.port), timeout=1):
        pass
