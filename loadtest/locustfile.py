"""Realistic remote_write load for the edge: many tenants with a skewed (Zipf) share of the
traffic, Prometheus-like batches of up to 2,000 samples with real label sets, Remote Write 1.0
and 2.0, and a few tenants over their limits (loadtest/overrides.yaml).

A 429 is the edge doing its job: it is reported as success under its own row ("LIMITED ...")
and never as a failure; any other non-2xx answer is a failure, and locust then exits 1.

    locust -f loadtest/locustfile.py --headless -u 20 -r 20 -t 20s --host http://127.0.0.1:18000

(`make loadtest` starts the local stack, runs this for a bounded time and writes the reports.)
"""

from __future__ import annotations

import random

from locust import FastHttpUser, constant_pacing, task
from mimir_edge.localstack.traffic import RW1_HEADERS, RW2_HEADERS, Shape, compress, rw1_request, rw2_request

TENANTS = [f"tenant-{i:02d}" for i in range(40)]
#: Zipf-like skew: tenant-00 sends about a quarter of all requests, the tail very little.
WEIGHTS = [1 / (rank + 1) ** 1.1 for rank in range(len(TENANTS))]
#: Series per request, as Prometheus batches them (max_samples_per_send defaults to 2,000).
BATCHES = [(2000, 0.45), (1000, 0.2), (500, 0.15), (100, 0.15), (10, 0.05)]
RW2_SHARE = 0.3
PUSH_PATH = "/api/v1/push"


def _bodies() -> dict[tuple[int, int], tuple[bytes, dict[str, str], int]]:
    """Prepared once: (protocol, series) → (snappy body, headers, items). Building bodies per
    request would make locust, not the edge, the bottleneck."""
    prepared = {}
    for series, _ in BATCHES:
        shape = Shape(series=series, labels_per_series=10, exemplars_per_series=0)
        hist = Shape(series=series // 10, histograms_per_series=1, labels_per_series=10)
        raw1 = rw1_request(shape) + rw1_request(hist) if hist.series else rw1_request(shape)
        prepared[(1, series)] = (compress(raw1), RW1_HEADERS, shape.items + hist.items)
        prepared[(2, series)] = (compress(rw2_request(shape)), RW2_HEADERS, shape.items)
    return prepared


BODIES = _bodies()


class RemoteWriteSender(FastHttpUser):
    """One Prometheus-like sender: pushes a batch about every 100 ms for a tenant chosen by the skew."""

    wait_time = constant_pacing(0.1)

    @task
    def push(self) -> None:
        tenant = random.choices(TENANTS, WEIGHTS)[0]
        protocol = 2 if random.random() < RW2_SHARE else 1
        series = random.choices([s for s, _ in BATCHES], [w for _, w in BATCHES])[0]
        body, headers, _items = BODIES[(protocol, series)]
        name = f"RW{protocol} push {series} series"
        with self.client.post(
            PUSH_PATH,
            data=body,
            headers={**headers, "X-Scope-OrgID": tenant},
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code == 429:
                # Expected: reported on a row of its own, as a success, never as a failure.
                response.request_meta["name"] = f"LIMITED (429) {name}"
                response.success()
            elif 200 <= response.status_code < 300:
                response.success()
            else:
                response.failure(f"unexpected {response.status_code}: {(response.text or '')[:200]}")
