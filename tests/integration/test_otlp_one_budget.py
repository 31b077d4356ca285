"""One tenant writing remote_write and OTLP at the same time through 3 real `mimir-rls` replicas on
one real Redis (standalone and a 6-node Cluster), over both ext_authz transports: the two protocols
draw from one budget, and what is admitted in total stays within 1 % of rate × T + burst.

Two budgets. With a rate whose refill over the whole run is below one item, T does not matter:
the total admitted is exactly the burst less what no request fits into, with no clock involved.
With a real rate, T is bracketed as in test_ten_replicas: every decision falls between the first
send and the last answer, and the bucket was being spent from the first answer to the last send.

What each admitted write was charged is what Mimir charges it, computed here independently of the
product's counter (the series of a remote_write body; tests/otlp_requests.py for OTLP), and the
RLS's own answer (x-mimir-edge-items) must agree.
"""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from mimir_edge.contract import CHECK_PREFIX, ITEMS_HEADER, OTLP_PATH
from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import encode_limits, limits_key
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request
from mimir_edge.store.client import RedisConfig, connect_sync

from tests.integration.test_otlp_charging import PROTOBUF, REQUESTS
from tests.otlp_requests import mimir_charge

REPLICAS = 3
RW_SERIES = 50
PUSH_PATH = "/api/v1/push"
OTLP_REQUEST = REQUESTS["identifying-only-resource"]
#: Mimir's charge for one write of each protocol.
CHARGE = {"remote_write": RW_SERIES, "otlp": mimir_charge(OTLP_REQUEST)}
BODY = {"remote_write": compress(rw1_request(Shape(series=RW_SERIES))), "otlp": OTLP_REQUEST.SerializeToString()}
HEADERS = {"remote_write": dict(RW1_HEADERS), "otlp": {"content-type": PROTOBUF}}
PATH = {"remote_write": PUSH_PATH, "otlp": OTLP_PATH}
#: Per replica, one worker per protocol; the transports are crossed so that each protocol goes
#: over HTTP to some replicas and over gRPC to the others.
WORKERS = [
    (replica, protocol, "http" if (replica + (protocol == "otlp")) % 2 else "grpc")
    for replica in range(REPLICAS)
    for protocol in ("remote_write", "otlp")
]
GIVE_UP_S = 120.0


def _env(config: RedisConfig) -> dict[str, str]:
    if config.cluster_nodes:
        return {"REDIS_CLUSTER_NODES": ",".join(f"{h}:{p}" for h, p in config.cluster_nodes)}
    return {"REDIS_URL": config.url}


@pytest.fixture
def replicas(redis_config: RedisConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RlsProcess]]:
    workdir = tmp_path_factory.mktemp("one-budget")
    processes = [RlsProcess(workdir, env=_env(redis_config) | {"LOG_LEVEL": "warning"}) for _ in range(REPLICAS)]
    try:
        with ThreadPoolExecutor(REPLICAS) as pool:
            list(pool.map(lambda p: p.start(timeout_s=60), processes))
        yield processes
    finally:
        for p in processes:
            p.stop()


Send = Callable[[], tuple[bool, int]]


def sender(rls: RlsProcess, tenant: str, protocol: str, transport: str) -> tuple[Send, Callable[[], None]]:
    """A function sending one write of `protocol` to `rls` over `transport`: (admitted, items the
    RLS says it charged); and how to close its connection."""
    headers = {**HEADERS[protocol], "x-scope-orgid": tenant}
    if transport == "http":
        conn = http.client.HTTPConnection("127.0.0.1", rls.authz_http_port, timeout=30)

        def over_http() -> tuple[bool, int]:
            conn.request("POST", CHECK_PREFIX + PATH[protocol], body=BODY[protocol], headers=headers)
            reply = conn.getresponse()
            reply.read()
            assert reply.status in (200, 429), f"{protocol} over http: {reply.status}"
            return reply.status == 200, int(reply.getheader(ITEMS_HEADER) or 0)

        return over_http, conn.close
    channel = grpc.insecure_channel(rls.grpc_addr)
    stub = authz_grpc.AuthorizationStub(channel)
    check = authz.CheckRequest()
    request = check.attributes.request.http
    request.path, request.method, request.raw_body = PATH[protocol], "POST", BODY[protocol]
    request.headers.update(headers)

    def over_grpc() -> tuple[bool, int]:
        answer = stub.Check(check, timeout=30)
        if not answer.HasField("ok_response"):
            assert answer.denied_response.status.code == 429, f"{protocol} over grpc: {answer.denied_response}"
            return False, 0
        return True, int({h.header.key: h.header.value for h in answer.ok_response.headers}[ITEMS_HEADER])

    return over_grpc, channel.close


@dataclass
class Run:
    """What the workers saw, added up under a lock."""

    admitted_items: dict[str, int] = field(default_factory=lambda: {"remote_write": 0, "otlp": 0})
    admitted: dict[str, int] = field(default_factory=lambda: {"remote_write": 0, "otlp": 0})
    denied: dict[str, int] = field(default_factory=lambda: {"remote_write": 0, "otlp": 0})
    #: The protocol of each admitted write, in the order the answers came.
    order: list[str] = field(default_factory=list)
    first_sent: float = 0.0
    first_answered: float = 0.0
    last_sent: float = 0.0
    last_answered: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total(self) -> int:
        return sum(self.admitted_items.values())


def hammer(replicas: list[RlsProcess], tenant: str, keep_going: Callable[[Run], bool]) -> Run:
    """Every worker sends as fast as it is answered while `keep_going(run)`."""
    run = Run()
    senders = [sender(replicas[r], tenant, protocol, transport) for r, protocol, transport in WORKERS]
    start = threading.Barrier(len(WORKERS))

    def worker(index: int) -> None:
        send = senders[index][0]
        protocol = WORKERS[index][1]
        start.wait()
        while keep_going(run):
            sent = time.monotonic()
            admitted, items = send()
            answered = time.monotonic()
            with run.lock:
                run.first_sent = min(run.first_sent or sent, sent)
                run.first_answered = min(run.first_answered or answered, answered)
                run.last_sent = max(run.last_sent, sent)
                run.last_answered = max(run.last_answered, answered)
                if admitted:
                    assert items == CHARGE[protocol], f"{protocol} charged {items}, Mimir charges {CHARGE[protocol]}"
                    run.admitted[protocol] += 1
                    run.admitted_items[protocol] += items
                    run.order.append(protocol)
                else:
                    run.denied[protocol] += 1

    try:
        with ThreadPoolExecutor(len(WORKERS)) as pool:
            list(pool.map(worker, range(len(WORKERS))))
    finally:
        for _, close in senders:
            close()
    return run


def set_limits(config: RedisConfig, tenant: str, limits: TenantLimits) -> None:
    client = connect_sync(config)
    try:
        client.hset(limits_key(tenant), mapping=dict(encode_limits(limits)))  # type: ignore[arg-type]
    finally:
        client.close()


def assert_both_protocols_shared_it(run: Run) -> None:
    assert run.admitted["remote_write"] > 0 and run.admitted["otlp"] > 0
    assert run.denied["remote_write"] > 0 and run.denied["otlp"] > 0
    # Concurrently: the admitted writes of the two protocols interleave, not one after the other.
    switches = sum(1 for a, b in zip(run.order, run.order[1:], strict=False) if a != b)
    assert switches >= 10, f"the protocols were admitted one after the other ({switches} switches)"


def test_remote_write_and_otlp_spend_one_burst_exactly(replicas: list[RlsProcess], redis_config: RedisConfig) -> None:
    """Refill over the whole run is below one item: the total admitted is the burst less what is
    left when no write of either protocol fits any more."""
    burst = 20_000
    rate = 0.001  # 0.12 items over GIVE_UP_S: no refill that could admit a write
    tenant = f"one-budget-{uuid.uuid4().hex[:8]}"
    set_limits(redis_config, tenant, TenantLimits(ingestion_rate=rate, ingestion_burst_size=burst))
    give_up = time.monotonic() + GIVE_UP_S

    def keep_going(run: Run) -> bool:
        # Until every protocol has been denied a few times: the bucket holds less than one write.
        return time.monotonic() < give_up and min(run.denied.values()) < 3 * REPLICAS

    run = hammer(replicas, tenant, keep_going)
    assert time.monotonic() < give_up, f"gave up after {GIVE_UP_S} s: {run.denied}"
    # What is left fits neither protocol's write: one more of each, to every replica, is denied.
    for rls in replicas:
        for protocol in ("remote_write", "otlp"):
            send, close = sender(rls, tenant, protocol, "grpc")
            try:
                assert send() == (False, 0), f"{protocol} admitted after the bucket was spent"
            finally:
                close()
    smallest = min(CHARGE.values())
    print(
        f"\nadmitted {run.admitted} writes = {run.admitted_items} items, total {run.total} of a burst of {burst}; "
        f"denied {run.denied}"
    )
    assert_both_protocols_shared_it(run)
    assert burst - smallest < run.total <= burst
    assert run.total >= 0.99 * burst


def test_remote_write_and_otlp_stay_within_rate_times_t_plus_burst(
    replicas: list[RlsProcess], redis_config: RedisConfig
) -> None:
    """A real rate: admitted within 1 % of rate × T + burst, T bracketed by the run's first and
    last sends and answers."""
    rate, burst, duration_s = 3_000, 12_000, 6.0
    tenant = f"one-budget-rate-{uuid.uuid4().hex[:8]}"
    set_limits(redis_config, tenant, TenantLimits(ingestion_rate=rate, ingestion_burst_size=burst))
    deadline = time.monotonic() + duration_s
    run = hammer(replicas, tenant, lambda run: time.monotonic() < deadline)
    outer = run.last_answered - run.first_sent
    inner = run.last_sent - run.first_answered
    least, most = burst + rate * inner, burst + rate * outer
    print(
        f"\nadmitted {run.admitted} writes = {run.admitted_items} items, total {run.total}; denied {run.denied}; "
        f"T={inner:.3f}..{outer:.3f}s budget={least:.0f}..{most:.0f}"
    )
    assert_both_protocols_shared_it(run)
    # The offered load must exceed the rate, or the bound says nothing about the bucket.
    offered = sum(run.admitted[p] * CHARGE[p] + run.denied[p] * CHARGE[p] for p in CHARGE)
    assert offered > 1.5 * most, f"offered {offered} items, not enough to push past {most:.0f}"
    assert 0.99 * least <= run.total <= 1.01 * most
