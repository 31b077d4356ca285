"""The canary configs (examples/nginx-canary-*.yaml, rendered with local addresses) in a real NGINX:
`split_clients` on the tenant sends each percentage of tenants to "envoy", keeps every tenant on
one side, and raising the percentage (10 → 25 → 50 → 75 → 100, by graceful reloads of one NGINX)
only moves tenants from the distributor to Envoy. Each tenant sends remote_write and OTLP, and
both go to the same side. Two recording upstreams stand for Envoy and the distributor; only the
routing is under test here."""

from __future__ import annotations

import base64
import http.client
import itertools
import random
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from mimir_edge.deploy.nginx import CANARY_STEPS, OTLP_PATH, NginxOptions, on_canary, phase_options
from mimir_edge.localstack.nginx import NginxProcess
from mimir_edge.localstack.processes import MissingProgram

from tests.recording_upstream import RecordingUpstream

TENANTS = [f"tenant-{i:04d}" for i in range(2000)]
#: Each tenant's requests: remote_write twice and OTLP once, on different connections and workers.
PATHS = ("/api/v1/push", "/api/v1/push", OTLP_PATH)
REQUESTS_PER_TENANT = len(PATHS)
TOLERANCE_POINTS = 5.0
BODY = b"\x00" * 200  # the recording upstreams do not parse it


@dataclass
class Split:
    """Which tenants each side got at one percentage, and what the clients were told."""

    envoy: Counter[str]
    distributor: Counter[str]
    statuses: Counter[int]
    route_header: dict[str, set[str]]

    def share(self) -> float:
        return 100.0 * len(self.envoy) / len(TENANTS)


def send_all(
    port: int, requests: Sequence[tuple[str, dict[str, str]] | tuple[str, dict[str, str], str]], threads: int = 8
) -> list[tuple[str, int, str]]:
    """POST each (tenant, headers[, path]) once over keep-alive connections; (tenant, status, route header)."""
    local = threading.local()
    opened: list[http.client.HTTPConnection] = []

    def one(item: tuple[str, dict[str, str]] | tuple[str, dict[str, str], str]) -> tuple[str, int, str]:
        tenant, headers = item[0], item[1]
        path = item[2] if len(item) == 3 else "/api/v1/push"
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            opened.append(local.conn)
        local.conn.request("POST", path, body=BODY, headers=headers)
        reply = local.conn.getresponse()
        reply.read()
        return tenant, reply.status, reply.getheader("X-Mimir-Edge-Route", "")

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, requests))
    finally:
        for conn in opened:
            conn.close()


def tenant_requests(tenants: Sequence[str]) -> list[tuple[str, dict[str, str], str]]:
    requests = [(t, {"X-Scope-OrgID": t, "Content-Encoding": "snappy"}, path) for t in tenants for path in PATHS]
    random.Random(7).shuffle(requests)  # a tenant's requests on different connections and workers
    return requests


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[RecordingUpstream, RecordingUpstream]]:
    envoy, distributor = RecordingUpstream("envoy").start(), RecordingUpstream("distributor").start()
    yield envoy, distributor
    envoy.stop()
    distributor.stop()


@pytest.fixture(scope="module")
def local_options(upstreams: tuple[RecordingUpstream, RecordingUpstream]) -> NginxOptions:
    envoy, distributor = upstreams
    return NginxOptions(listen=("127.0.0.1", 0), distributor=distributor.address, envoy=envoy.address)


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, local_options: NginxOptions) -> Iterator[NginxProcess]:
    try:
        process = NginxProcess(tmp_path_factory.mktemp("nginx"), phase_options("canary-10", local_options)).start()
    except MissingProgram as exc:
        pytest.fail(str(exc))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def splits(
    nginx: NginxProcess, upstreams: tuple[RecordingUpstream, RecordingUpstream], local_options: NginxOptions
) -> dict[int, Split]:
    """Every canary step in turn, one NGINX reloaded onto each: 2,000 tenants x 3 requests."""
    envoy, distributor = upstreams
    result = {}
    for percent in CANARY_STEPS:
        nginx.reload(phase_options(f"canary-{percent}", local_options))
        envoy.reset()
        distributor.reset()
        answers = send_all(nginx.listen_port, tenant_requests(TENANTS))
        routes: dict[str, set[str]] = {}
        for tenant, _, route in answers:
            routes.setdefault(tenant, set()).add(route)
        result[percent] = Split(
            envoy.snapshot(), distributor.snapshot(), Counter(status for _, status, _ in answers), routes
        )
        print(
            f"canary {percent:3d} %: {len(result[percent].envoy)} of {len(TENANTS)} tenants "
            f"({result[percent].share():.2f} %) via Envoy, {len(result[percent].distributor)} direct"
        )
    return result


@pytest.mark.parametrize("percent", CANARY_STEPS)
def test_each_percentage_of_tenants_goes_through_envoy(splits: dict[int, Split], percent: int) -> None:
    split = splits[percent]
    assert split.statuses == Counter({200: len(TENANTS) * REQUESTS_PER_TENANT})
    assert abs(split.share() - percent) <= TOLERANCE_POINTS, f"{split.share():.2f} % of tenants for {percent} %"
    if percent == 100:
        assert not split.distributor


@pytest.mark.parametrize("percent", CANARY_STEPS)
def test_a_tenant_stays_on_one_side(splits: dict[int, Split], percent: int) -> None:
    split = splits[percent]
    assert not set(split.envoy) & set(split.distributor), "a tenant's requests went to both sides"
    assert set(split.envoy) | set(split.distributor) == set(TENANTS)
    # every request of the tenant, remote_write and OTLP, on its one side
    assert all(n == REQUESTS_PER_TENANT for n in (split.envoy + split.distributor).values())
    # and the client is told the same side every time (X-Mimir-Edge-Route)
    assert all(len(routes) == 1 for routes in split.route_header.values())
    assert {t for t, r in split.route_header.items() if r == {"envoy"}} == set(split.envoy)


def test_raising_the_percentage_only_moves_tenants_towards_envoy(splits: dict[int, Split]) -> None:
    for lower, higher in itertools.pairwise(CANARY_STEPS):
        assert set(splits[lower].envoy) <= set(splits[higher].envoy), f"{lower} % → {higher} % moved a tenant back"


@pytest.mark.parametrize("percent", CANARY_STEPS)
def test_on_canary_predicts_nginx_exactly(splits: dict[int, Split], percent: int) -> None:
    """mimir_edge.deploy.nginx.on_canary (MurmurHash2, NGINX's ranges) agrees with NGINX for every tenant."""
    assert {t for t in TENANTS if on_canary(t, percent)} == set(splits[percent].envoy)


def test_basic_auth_tenants_are_split_like_header_tenants(
    tmp_path: Path, upstreams: tuple[RecordingUpstream, RecordingUpstream], local_options: NginxOptions
) -> None:
    """Prometheus 2.42 sends basic auth, not headers: the user becomes the tenant, is split by it,
    and reaches the upstream as X-Scope-OrgID."""
    envoy, distributor = upstreams
    users = [(f"team-{i:02d}", f"pw-{i}") for i in range(60)]
    options = phase_options("canary-50", local_options)
    nginx = NginxProcess(tmp_path / "nginx", replace(options, basic_auth_tenants=tuple(users))).start()
    try:
        envoy.reset()
        distributor.reset()
        requests = [
            (user, {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()})
            for user, pw in users
        ]
        answers = send_all(nginx.listen_port, requests)
    finally:
        nginx.stop()
    assert {status for _, status, _ in answers} == {200}
    assert set(envoy.snapshot()) == {u for u, _ in users if on_canary(u, 50)}
    assert set(distributor.snapshot()) == {u for u, _ in users if not on_canary(u, 50)}
    assert 0 < len(envoy.snapshot()) < len(users)
