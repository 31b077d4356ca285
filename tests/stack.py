"""Helpers for tests that run the real stack: processes started here are stopped by PID."""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis as sync_redis
from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import encode_limits, limits_key
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.localstack.envoy import EnvoyProcess
from mimir_edge.localstack.rls import RlsProcess


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def post(url: str, body: bytes, headers: Mapping[str, str], path: str = "/api/v1/push", timeout: float = 10) -> Reply:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=dict(headers))
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def set_limits(redis_url: str, tenant: str, limits: TenantLimits) -> None:
    client = sync_redis.Redis.from_url(redis_url)
    try:
        client.hset(limits_key(tenant), mapping=dict(encode_limits(limits)))  # type: ignore[arg-type]
    finally:
        client.close()


@dataclass
class Stack:
    """RLS and Envoy processes of one test module; `close()` stops them all by PID."""

    workdir: Path
    rls: list[RlsProcess] = field(default_factory=list)
    envoys: list[EnvoyProcess] = field(default_factory=list)

    def add_rls(self, env: Mapping[str, str], *, wait_serving: bool = True) -> RlsProcess:
        process = RlsProcess(self.workdir, env=dict(env), wait_serving=wait_serving)
        self.rls.append(process)
        return process.start()

    def add_envoy(self, options: EnvoyOptions) -> EnvoyProcess:
        process = EnvoyProcess(self.workdir, options)
        self.envoys.append(process)
        return process.start()

    def close(self) -> None:
        """Stop everything; then fail if an RLS or Envoy had ended by itself during the test (a
        crash is a failure even when the test's own checks did not notice it)."""
        processes = [p.process for p in (*self.envoys, *self.rls) if p.process is not None]
        unasked = [how for how in (p.exited_unasked() for p in processes) if how]
        for envoy in self.envoys:
            envoy.stop()
        for rls in self.rls:
            rls.stop()
        if unasked:
            raise AssertionError("\n\n".join(unasked))
