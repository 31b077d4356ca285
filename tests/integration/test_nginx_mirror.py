"""The mirror phase for real: NGINX (the mirror config) → the distributor, and a copy → Envoy in
mirror mode → the RLS in shadow mode (ENFORCEMENT_DISABLED=true) on real Redis. The distributor is
the stand-in (it records every request and body). Each write, remote_write or OTLP, reaches it
exactly once, the client always gets the distributor's 2xx, and the RLS records the would-be
denials of a tenant over its limit (OTLP copies counted as OTLP, by Mimir's rules). Envoy's own
`distributor` cluster points at the same stand-in, so a forwarded copy would show up as a second
write."""

from __future__ import annotations

import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mimir_edge.core.limits import TenantLimits
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.deploy.nginx import MIRROR_OTLP_PATH, MIRROR_PATH, OTLP_PATH, NginxOptions, phase_options
from mimir_edge.localstack.distributor import StandInDistributor
from mimir_edge.localstack.envoy import EnvoyProcess
from mimir_edge.localstack.nginx import NginxProcess
from mimir_edge.localstack.processes import MissingProgram
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request
from prometheus_client.parser import text_string_to_metric_families

from tests.otlp_requests import T0, every_point_type, mimir_charge, request, resource
from tests.stack import post, set_limits
from tests.waiting import wait_for

NOISY_REQUESTS = 20
QUIET_REQUESTS = 10
SERIES = 100  # items per request; the noisy tenant's burst admits exactly one request


@dataclass
class MirrorStack:
    distributor: StandInDistributor
    rls: RlsProcess
    envoy: EnvoyProcess
    nginx: NginxProcess


def tenant_requests(rls_metrics_url: str, tenant: str) -> Counter[str]:
    with urllib.request.urlopen(rls_metrics_url, timeout=5) as reply:
        text = reply.read().decode()
    return Counter(
        {
            s.labels["decision"]: int(s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "rls_tenant_requests_total" and s.labels.get("tenant") == tenant
        }
    )


def envoy_stat(envoy: EnvoyProcess, name: str) -> int:
    for line in envoy.stats().splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    raise AssertionError(f"no Envoy stat {name}")


def start_stack(workdir: Path, redis: RedisServer, envoy_mode: str) -> Iterator[MirrorStack]:
    distributor = StandInDistributor(keep_requests=10_000).start()
    started: list[RlsProcess | EnvoyProcess | NginxProcess] = []
    try:
        rls = RlsProcess(workdir, env={"REDIS_URL": redis.url, "ENFORCEMENT_DISABLED": "true"})
        started.append(rls)
        rls.start()
        envoy = EnvoyProcess(
            workdir / "envoy",
            EnvoyOptions(
                rls=(("127.0.0.1", rls.authz_http_port),),  # the default transport
                upstream=("127.0.0.1", distributor.port),
                mode=envoy_mode,
                listen=("127.0.0.1", 0),
                admin=("127.0.0.1", 0),
            ),
        )
        started.append(envoy)
        envoy.start()
        local = NginxOptions(
            listen=("127.0.0.1", 0),
            distributor=("127.0.0.1", distributor.port),
            envoy=("127.0.0.1", envoy.listen_port),
        )
        nginx = NginxProcess(workdir / "nginx", phase_options("mirror", local))
        started.append(nginx)
        nginx.start()
        yield MirrorStack(distributor, rls, envoy, nginx)
    except MissingProgram as exc:
        pytest.fail(str(exc))
    finally:
        for process in reversed(started):
            process.stop()
        distributor.stop()


@pytest.fixture(scope="module")
def mirror_stack(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[MirrorStack]:
    yield from start_stack(tmp_path_factory.mktemp("mirror"), redis_server, "mirror")


@pytest.fixture(scope="module")
def forwarding_envoy_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[MirrorStack]:
    yield from start_stack(tmp_path_factory.mktemp("mirror-forwarding"), redis_server, "canary")


def send(stack: MirrorStack, tenant: str, count: int) -> tuple[list[bytes], list[int]]:
    """`count` distinct remote_write bodies for `tenant` through NGINX; (bodies, statuses)."""
    bodies = [compress(rw1_request(Shape(series=SERIES), ts_ms=1_700_000_000_000 + i)) for i in range(count)]
    statuses = [post(stack.nginx.url, body, {**RW1_HEADERS, "X-Scope-OrgID": tenant}).status for body in bodies]
    return bodies, statuses


def otlp_bodies(count: int) -> tuple[list[bytes], int]:
    """`count` distinct OTLP protobuf requests, and what Mimir charges for each (all the same)."""
    requests = [request((resource(), every_point_type(t=T0 + i * 10**9))) for i in range(count)]
    charges = {mimir_charge(r) for r in requests}
    assert len(charges) == 1
    return [r.SerializeToString() for r in requests], charges.pop()


def send_otlp(stack: MirrorStack, tenant: str, bodies: list[bytes]) -> list[int]:
    headers = {"X-Scope-OrgID": tenant, "Content-Type": "application/x-protobuf"}
    return [post(stack.nginx.url, body, headers, path=OTLP_PATH).status for body in bodies]


def received(stack: MirrorStack, tenant: str, path: str = "/api/v1/push") -> Counter[bytes]:
    requests, _ = stack.distributor.snapshot()
    return Counter(r.body for r in requests if r.headers.get("x-scope-orgid") == tenant and r.path == path)


def test_mirror_writes_each_request_exactly_once_and_the_rls_sees_would_be_denials(
    mirror_stack: MirrorStack, redis_server: RedisServer
) -> None:
    noisy, quiet = f"noisy-{uuid.uuid4().hex[:8]}", f"quiet-{uuid.uuid4().hex[:8]}"
    set_limits(redis_server.url, noisy, TenantLimits(ingestion_rate=1, ingestion_burst_size=SERIES))
    noisy_bodies, noisy_statuses = send(mirror_stack, noisy, NOISY_REQUESTS)
    quiet_bodies, quiet_statuses = send(mirror_stack, quiet, QUIET_REQUESTS)

    # Mirror never denies: the client hears the distributor.
    assert noisy_statuses == [200] * NOISY_REQUESTS
    assert quiet_statuses == [200] * QUIET_REQUESTS

    # Every copy was decided (in shadow): one admitted by the noisy tenant's burst, the rest would-be denials.
    expected_noisy = Counter({"allowed": 1, "shadow_denied": NOISY_REQUESTS - 1})
    wait_for(lambda: tenant_requests(mirror_stack.rls.metrics_url, noisy) == expected_noisy, what="noisy decisions")
    wait_for(
        lambda: tenant_requests(mirror_stack.rls.metrics_url, quiet) == Counter({"allowed": QUIET_REQUESTS}),
        what="quiet decisions",
    )

    # All copies are decided, so any forwarded copy would have arrived by now.
    assert received(mirror_stack, noisy) == Counter(noisy_bodies)  # each body exactly once, byte-identical
    assert received(mirror_stack, quiet) == Counter(quiet_bodies)
    assert mirror_stack.distributor.request_count[noisy] == NOISY_REQUESTS
    assert mirror_stack.distributor.request_count[quiet] == QUIET_REQUESTS
    assert mirror_stack.distributor.items[noisy] == NOISY_REQUESTS * SERIES
    # Envoy answered every copy itself and never used its distributor cluster.
    assert envoy_stat(mirror_stack.envoy, "cluster.distributor.upstream_rq_total") == 0
    assert envoy_stat(mirror_stack.envoy, "http.remote_write.downstream_rq_2xx") >= NOISY_REQUESTS + QUIET_REQUESTS
    print(
        f"mirror: sent {NOISY_REQUESTS} (noisy) + {QUIET_REQUESTS} (quiet); distributor got "
        f"{mirror_stack.distributor.request_count[noisy]} + {mirror_stack.distributor.request_count[quiet]}; "
        f"RLS (shadow) decided noisy {dict(tenant_requests(mirror_stack.rls.metrics_url, noisy))}, "
        f"quiet {dict(tenant_requests(mirror_stack.rls.metrics_url, quiet))}; Envoy forwarded 0"
    )


def test_mirror_writes_each_otlp_request_once_and_the_rls_counts_the_copy_as_otlp(
    mirror_stack: MirrorStack, redis_server: RedisServer
) -> None:
    noisy, quiet = f"otlp-noisy-{uuid.uuid4().hex[:8]}", f"otlp-quiet-{uuid.uuid4().hex[:8]}"
    bodies, n = otlp_bodies(NOISY_REQUESTS)
    # The burst admits exactly one request as Mimir counts it (refill far below n over the test);
    # counted as remote_write, each copy would be refused as a bad body (decision "rejected").
    set_limits(redis_server.url, noisy, TenantLimits(ingestion_rate=1, ingestion_burst_size=n))
    assert send_otlp(mirror_stack, noisy, bodies) == [200] * NOISY_REQUESTS
    assert send_otlp(mirror_stack, quiet, bodies[:QUIET_REQUESTS]) == [200] * QUIET_REQUESTS

    expected_noisy = Counter({"allowed": 1, "shadow_denied": NOISY_REQUESTS - 1})
    wait_for(lambda: tenant_requests(mirror_stack.rls.metrics_url, noisy) == expected_noisy, what="noisy decisions")
    wait_for(
        lambda: tenant_requests(mirror_stack.rls.metrics_url, quiet) == Counter({"allowed": QUIET_REQUESTS}),
        what="quiet decisions",
    )
    assert received(mirror_stack, noisy, OTLP_PATH) == Counter(bodies)  # each exactly once, byte-identical
    assert received(mirror_stack, quiet, OTLP_PATH) == Counter(bodies[:QUIET_REQUESTS])
    assert envoy_stat(mirror_stack.envoy, "cluster.distributor.upstream_rq_total") == 0
    print(
        f"mirror OTLP: {NOISY_REQUESTS} + {QUIET_REQUESTS} requests of {n} items each reached the distributor once; "
        f"RLS (shadow) decided noisy {dict(tenant_requests(mirror_stack.rls.metrics_url, noisy))}"
    )


def test_a_forwarding_envoy_still_cannot_make_the_distributor_ingest_a_copy(
    forwarding_envoy_stack: MirrorStack,
) -> None:
    """Envoy left in canary mode during the mirror phase (the original deployment plan's trap): the copies reach the
    distributor, but on MIRROR_PATH, which Mimir has no route for (404), never as a second push."""
    stack = forwarding_envoy_stack
    tenant = f"mirrored-{uuid.uuid4().hex[:8]}"
    bodies, statuses = send(stack, tenant, QUIET_REQUESTS)
    assert statuses == [200] * QUIET_REQUESTS
    wait_for(lambda: sum(received(stack, tenant, MIRROR_PATH).values()) == QUIET_REQUESTS, what="forwarded copies")
    assert received(stack, tenant) == Counter(bodies)  # the push path: still exactly once
    assert received(stack, tenant, MIRROR_PATH) == Counter(bodies)
    otlp, _ = otlp_bodies(QUIET_REQUESTS)
    assert send_otlp(stack, tenant, otlp) == [200] * QUIET_REQUESTS
    # The OTLP copies are forwarded too (Envoy's distributor cluster sees both protocols' copies),
    # on MIRROR_OTLP_PATH: not Mimir's OTLP path, so never ingested as a second write.
    wait_for(
        lambda: envoy_stat(stack.envoy, "cluster.distributor.upstream_rq_total") == 2 * QUIET_REQUESTS,
        what="forwarded OTLP copies",
    )
    assert received(stack, tenant, OTLP_PATH) == Counter(otlp)
    assert sum(received(stack, tenant, MIRROR_OTLP_PATH).values()) == 0
    print(
        f"mirror with a forwarding Envoy: {QUIET_REQUESTS} pushes once each at /api/v1/push and {OTLP_PATH}, "
        f"{QUIET_REQUESTS} copies each at {MIRROR_PATH} and {MIRROR_OTLP_PATH} (not Mimir routes)"
    )
