"""Measuring how long a limit change in the overrides source takes to be enforced by every RLS
replica. Shared by the propagation test and its benchmark, so both measure the same thing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import code_pb2

from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

ITEMS = 50
LOW_RATE, HIGH_RATE = 10, 100_000


def overrides_document(tenant: str, rate: float) -> str:
    # burst factor 1: burst = rate, so a lowered rate denies a 50-item request at once (over burst)
    return f"overrides:\n  {tenant}:\n    ingestion_rate: {rate}\n    ingestion_burst_factor: 1\n"


@dataclass(frozen=True)
class Change:
    rate: float
    seconds: float


class Prober:
    """Asks each replica directly (gRPC Check) whether a 50-item request passes."""

    def __init__(self, grpc_addrs: list[str], tenant: str):
        self._channels = [grpc.insecure_channel(a) for a in grpc_addrs]
        self._stubs = [authz_grpc.AuthorizationStub(c) for c in self._channels]
        request = authz.CheckRequest()
        request.attributes.request.http.headers.update({**RW1_HEADERS, "x-scope-orgid": tenant})
        request.attributes.request.http.raw_body = compress(rw1_request(Shape(series=ITEMS)))
        self._request = request

    def admits(self, replica: int) -> bool:
        return bool(self._stubs[replica].Check(self._request, timeout=5).status.code == code_pb2.OK)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


def measure_changes(
    path: Path,
    tenant: str,
    prober: Prober,
    replicas: int,
    changes: int,
    *,
    timeout_s: float = 5.0,
    settle: Callable[[], None] = lambda: time.sleep(0.05),
) -> list[Change]:
    """Alternately lower and raise the tenant's rate in the file; for each change, the time until
    every replica answers by the new limit."""
    results = []
    for i in range(changes):
        rate = LOW_RATE if i % 2 == 0 else HIGH_RATE
        want_admitted = rate == HIGH_RATE
        started = time.monotonic()
        path.write_text(overrides_document(tenant, rate))
        pending = set(range(replicas))
        while pending:
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"change {i} to {rate}/s not enforced by replicas {sorted(pending)}")
            pending = {r for r in pending if prober.admits(r) != want_admitted}
        results.append(Change(rate, time.monotonic() - started))
        settle()
    return results


def summary(changes: list[Change]) -> dict[str, float]:
    seconds = sorted(c.seconds for c in changes)
    return {
        "changes": len(seconds),
        "p50_ms": round(statistics.median(seconds) * 1000, 1),
        "p99_ms": round(seconds[min(len(seconds) - 1, round(0.99 * (len(seconds) - 1)))] * 1000, 1),
        "max_ms": round(seconds[-1] * 1000, 1),
        "min_ms": round(seconds[0] * 1000, 1),
    }
