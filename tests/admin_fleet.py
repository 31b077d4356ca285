"""Two real RLS replicas on one fresh real Redis behind one real Envoy, with a stand-in
distributor and an admin token file: what the admin API, UI and contract tests run against."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimir_edge.core.limits import TenantLimits
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.localstack.distributor import StandInDistributor
from mimir_edge.localstack.envoy import EnvoyProcess
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

from tests.stack import post, set_limits

TOKEN = "s3cret-token-for-tests"
TOKEN_NAME = "oncall"


@dataclass
class Sent:
    """What the test sent through Envoy and what Envoy answered, per tenant."""

    requests: Counter[str] = field(default_factory=Counter)
    allowed: Counter[str] = field(default_factory=Counter)
    denied: Counter[str] = field(default_factory=Counter)
    allowed_items: Counter[str] = field(default_factory=Counter)
    denied_items: Counter[str] = field(default_factory=Counter)


@dataclass
class Fleet:
    workdir: Path
    redis: RedisServer | None = None
    distributor: StandInDistributor | None = None
    replicas: list[RlsProcess] = field(default_factory=list)
    envoy: EnvoyProcess | None = None
    sent: Sent = field(default_factory=Sent)

    def start(self, replicas: int = 2, env: Mapping[str, str] | None = None) -> Fleet:
        self.redis = RedisServer(self.workdir / "redis").start()
        self.distributor = StandInDistributor().start()
        token_file = self.workdir / "admin-tokens"
        token_file.write_text(f"# name:token\n{TOKEN_NAME}:{TOKEN}\n")
        for _ in range(replicas):
            rls = RlsProcess(
                self.workdir,
                env={"REDIS_URL": self.redis.url, "ADMIN_TOKEN_FILE": str(token_file), **(env or {})},
            )
            self.replicas.append(rls)
            rls.start(timeout_s=30)
        self.envoy = EnvoyProcess(
            self.workdir / "envoy",
            EnvoyOptions(
                rls=tuple(("127.0.0.1", r.authz_http_port) for r in self.replicas),  # the default transport
                upstream=("127.0.0.1", self.distributor.port),
                listen=("127.0.0.1", 0),
                admin=("127.0.0.1", 0),
            ),
        ).start()
        return self

    def stop(self) -> None:
        if self.envoy:
            self.envoy.stop()
        for rls in self.replicas:
            rls.stop()
        if self.distributor:
            self.distributor.stop()
        if self.redis:
            self.redis.stop()

    def set_limits(self, tenant: str, limits: TenantLimits) -> None:
        assert self.redis is not None
        set_limits(self.redis.url, tenant, limits)

    def push(self, tenant: str, series: int, count: int, external_labels: tuple[tuple[str, str], ...] = ()) -> None:
        """`count` RW1 requests of `series` samples each through Envoy (each series carrying
        `external_labels`, as an HA Prometheus sends them); tallies the answers."""
        assert self.envoy is not None
        body = compress(rw1_request(Shape(series=series, external_labels=external_labels)))
        for _ in range(count):
            reply = post(self.envoy.url, body, {**RW1_HEADERS, "X-Scope-OrgID": tenant})
            self.sent.requests[tenant] += 1
            if reply.status in (200, 204):
                self.sent.allowed[tenant] += 1
                self.sent.allowed_items[tenant] += series
            elif reply.status == 429:
                self.sent.denied[tenant] += 1
                self.sent.denied_items[tenant] += series
            else:
                raise AssertionError(f"unexpected {reply.status}: {reply.body[:200]!r}")


def api(
    base: str,
    path: str,
    *,
    method: str = "GET",
    body: object | None = None,
    token: str | None = None,
) -> tuple[int, Any]:
    """One admin API call: (status, decoded JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        with exc:  # it holds the connection
            return exc.code, json.loads(exc.read())
