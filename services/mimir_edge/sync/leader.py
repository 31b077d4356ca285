"""Leader election with a Kubernetes Lease (coordination.k8s.io/v1), as client-go does it.

Only the leader writes to Redis; the others keep following the source so they can take over at
once. Expiry is judged by when *this* process last saw the lease record change (not by the
holder's clock), and every write carries the resourceVersion it read, so two candidates can
never both win: the API server rejects the second write with 409.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = structlog.get_logger("overrides-sync.leader")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaseElector:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration_s: int = 15,
        retry_period_s: float = 2.0,
    ):
        self._api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration_s = lease_duration_s
        self.retry_period_s = retry_period_s
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._observed_record: tuple[object, ...] | None = None
        self._observed_at = 0.0
        self._last_renewed = 0.0
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lease-elector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning and give the lease up, so a successor need not wait for expiry."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.is_leader:
            try:
                lease = self._api.read_namespaced_lease(self.name, self.namespace)
                if lease.spec is not None and lease.spec.holder_identity == self.identity:
                    lease.spec.holder_identity = None
                    self._api.replace_namespaced_lease(self.name, self.namespace, lease)
            except (ApiException, OSError) as exc:
                log.warning("could not release the lease", error=str(exc))
            self._set_leader(False)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_acquire_or_renew()
            except Exception as exc:  # the API server being away must not kill the elector
                log.warning("lease election failed", error=str(exc))
            if self.is_leader and time.monotonic() - self._last_renewed > self.lease_duration_s:
                log.error("lease not renewed in time: stepping down")
                self._set_leader(False)
            self._stop.wait(self.retry_period_s)

    def try_acquire_or_renew(self) -> bool:
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create()
        if lease.spec is None:
            lease.spec = client.V1LeaseSpec()
        spec = lease.spec
        record = (spec.holder_identity, spec.renew_time, spec.lease_transitions)
        if record != self._observed_record:
            self._observed_record = record
            self._observed_at = time.monotonic()
        holder = spec.holder_identity
        duration = spec.lease_duration_seconds or self.lease_duration_s
        expired = time.monotonic() > self._observed_at + duration
        if holder and holder != self.identity and not expired:
            self._set_leader(False)
            return False
        now = _now()
        if holder != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.lease_duration_s
        try:
            self._api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote first
                self._set_leader(False)
                return False
            raise
        self._renewed()
        return True

    def _create(self) -> bool:
        now = _now()
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=self.lease_duration_s,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            self._api.create_namespaced_lease(self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        self._renewed()
        return True

    def _renewed(self) -> None:
        self._last_renewed = time.monotonic()
        self._set_leader(True)

    def _set_leader(self, leader: bool) -> None:
        if leader != self.is_leader:
            log.info("leadership changed", leader=leader, identity=self.identity, lease=f"{self.namespace}/{self.name}")
        if leader:
            self._leader.set()
        else:
            self._leader.clear()
