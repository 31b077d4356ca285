"""The rollout in docs/deployment-guide.md, end to end with a real remote_write client: real Prometheus (Debian's 2.42)
scrapes itself and remote-writes through real NGINX (the configs of examples/, rendered for local
addresses) → real Envoy (`render-envoy`) → real RLS replicas on real Redis → a receiving real
Prometheus standing in for the distributor.

Prometheus 2.42 cannot send X-Scope-OrgID, so each remote_write queue authenticates as its tenant
(basic auth) and NGINX maps the user to the header; each queue also labels its samples with
`tenant`, so the receiver can count them per tenant. Every phase prints what it saw.

OTLP goes through the same NGINX configs; Debian's Prometheus 2.42 has no OTLP receiver (it
answers 404), so for OTLP what is checked is which side decided each write: the RLS counts a
decision for exactly the tenants the phase sends through Envoy.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from mimir_edge.core.limits import TenantLimits
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.deploy.nginx import NginxOptions, on_canary
from mimir_edge.localstack.envoy import EnvoyProcess
from mimir_edge.localstack.nginx import NginxProcess
from mimir_edge.localstack.processes import MissingProgram
from mimir_edge.localstack.prometheus import PrometheusProcess, RemoteWrite
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess
from prometheus_client.parser import text_string_to_metric_families

from tests.otlp_requests import every_point_type, request, resource
from tests.stack import post, set_limits
from tests.waiting import wait_for

PASSWORD = "remote-write"
#: Prometheus scraping itself sends several hundred samples per second per queue: far over this.
OVER = TenantLimits(ingestion_rate=20, ingestion_burst_size=600)
UNDER = TenantLimits(ingestion_rate=1_000_000, ingestion_burst_size=10_000_000)


def metrics(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """A /metrics page: sample name → {labels: value}."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def per_queue(page: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> dict[str, float]:
    return {dict(labels)["remote_name"]: v for labels, v in page.get(name, {}).items()}


def total(page: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **match: str) -> float:
    return sum(v for labels, v in page.get(name, {}).items() if match.items() <= dict(labels).items())


@dataclass
class Edge:
    """One phase's stack; processes stop by PID in `stop()`."""

    workdir: Path
    tenants: Sequence[str]
    redis: RedisServer | None = None
    receiver: PrometheusProcess | None = None
    rls: list[RlsProcess] = field(default_factory=list)
    envoy: EnvoyProcess | None = None
    nginx: NginxProcess | None = None
    sender: PrometheusProcess | None = None

    def nginx_options(self, phase: str, percent: int = 0) -> NginxOptions:
        assert self.envoy is not None and self.receiver is not None
        return NginxOptions(
            phase=phase,
            canary_percent=percent,
            listen=("127.0.0.1", 0),
            distributor=("127.0.0.1", self.receiver.port),
            envoy=("127.0.0.1", self.envoy.listen_port),
            basic_auth_tenants=tuple((t, PASSWORD) for t in self.tenants),
            upstream_path="/api/v1/write",
        )

    def start(self, *, phase: str, percent: int = 0, shadow: bool, limits: dict[str, TenantLimits]) -> Edge:
        try:
            self.redis = RedisServer(self.workdir / "redis").start()
            for tenant, lim in limits.items():
                set_limits(self.redis.url, tenant, lim)
            self.receiver = PrometheusProcess(self.workdir / "receiver", "receiver", receiver=True).start()
            for _ in range(2):
                self.rls.append(
                    RlsProcess(
                        self.workdir,
                        env={"REDIS_URL": self.redis.url, "ENFORCEMENT_DISABLED": str(shadow).lower()},
                    ).start(timeout_s=30)
                )
            self.envoy = EnvoyProcess(
                self.workdir / "envoy",
                EnvoyOptions(
                    rls=tuple(("127.0.0.1", r.authz_http_port) for r in self.rls),  # the default transport
                    upstream=("127.0.0.1", self.receiver.port),
                    mode="mirror" if phase == "mirror" else "full",
                    listen=("127.0.0.1", 0),
                    admin=("127.0.0.1", 0),
                ),
            ).start()
            self.nginx = NginxProcess(self.workdir / "nginx", self.nginx_options(phase, percent)).start()
            self.sender = PrometheusProcess(
                self.workdir / "sender",
                "sender",
                remote_writes=[RemoteWrite(f"{self.nginx.url}/api/v1/push", t, PASSWORD) for t in self.tenants],
            ).start()
        except MissingProgram as exc:
            self.stop()
            pytest.fail(str(exc))
        except BaseException:
            self.stop()
            raise
        return self

    def quiesce(self, timeout_s: float = 30.0) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """Stop the sender scraping (config reload), wait until its queues are empty: from then on
        its counters and the receiver's are final. Returns the sender's final /metrics."""
        assert self.sender is not None
        config = self.sender.config()
        config["scrape_configs"] = []
        (self.sender.workdir / "sender.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        request = urllib.request.Request(f"{self.sender.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        time.sleep(2.5)  # the last scrape's samples reach the queues

        def drained() -> bool:
            page = metrics(self.sender.url)  # type: ignore[union-attr]
            return total(page, "prometheus_remote_storage_samples_pending") == 0

        wait_for(drained, timeout_s=timeout_s, interval_s=0.5, what="the sender's queues to drain")
        time.sleep(1.5)
        return metrics(self.sender.url)

    def batches(self) -> dict[str, float]:
        """remote_write requests each queue has sent (every attempt)."""
        assert self.sender is not None
        return per_queue(metrics(self.sender.url), "prometheus_remote_storage_sent_batch_duration_seconds_count")

    def wait_for_batches(self, count: int, timeout_s: float = 60.0) -> None:
        start = self.batches()
        wait_for(
            lambda: all(self.batches().get(t, 0) >= start.get(t, 0) + count for t in self.tenants),
            timeout_s=timeout_s,
            interval_s=0.25,
            what=f"{count} more remote_write requests from every tenant",
        )

    def received(self, tenant: str) -> float:
        assert self.receiver is not None
        # The raw samples (a range selector), counted here: count_over_time over many series
        # would drop the metric names and collide.
        return float(sum(len(series["values"]) for series in self.receiver.query(f'{{tenant="{tenant}"}}[1h]')))

    def rls_requests(self, tenant: str, decision: str) -> float:
        return sum(
            total(
                metrics(r.metrics_url.removesuffix("/metrics")),
                "rls_tenant_requests_total",
                tenant=tenant,
                decision=decision,
            )
            for r in self.rls
        )

    def stop(self) -> None:
        for process in (self.sender, self.nginx, self.envoy, *self.rls, self.receiver, self.redis):
            if process is not None:
                process.stop()


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[list[Edge]]:
    made: list[Edge] = []
    yield made
    for e in made:
        e.stop()


def delivered(sender: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> dict[str, float]:
    """Samples each queue got a 2xx for: attempts minus failed minus retried."""
    sent = per_queue(sender, "prometheus_remote_storage_samples_total")
    failed = per_queue(sender, "prometheus_remote_storage_samples_failed_total")
    retried = per_queue(sender, "prometheus_remote_storage_samples_retried_total")
    return {q: sent[q] - failed.get(q, 0) - retried.get(q, 0) for q in sent}


def test_mirror_every_sample_once_and_shadow_denials_only(edge: list[Edge], tmp_path: Path) -> None:
    over, under = "mirror-over", "mirror-under"
    e = Edge(tmp_path, [over, under])
    edge.append(e)
    e.start(phase="mirror", shadow=True, limits={over: OVER, under: UNDER})
    e.wait_for_batches(6)
    sender = e.quiesce()
    assert e.receiver is not None and e.envoy is not None
    receiver = metrics(e.receiver.url)
    got = delivered(sender)
    batches = sum(per_queue(sender, "prometheus_remote_storage_sent_batch_duration_seconds_count").values())
    writes = total(receiver, "prometheus_http_requests_total", handler="/api/v1/write")
    appended = total(receiver, "prometheus_tsdb_head_samples_appended_total")
    received = {t: e.received(t) for t in (over, under)}
    shadow = e.rls_requests(over, "shadow_denied")
    denied = e.rls_requests(over, "denied") + e.rls_requests(under, "denied")
    print(
        f"\nmirror: sent {got}, received {received}, sender batches {batches:.0f}, receiver writes {writes:.0f}, "
        f"appended {appended:.0f}, RLS shadow_denied({over}) {shadow:.0f}, denied {denied:.0f}"
    )
    assert sum(per_queue(sender, "prometheus_remote_storage_samples_failed_total").values()) == 0
    assert sum(per_queue(sender, "prometheus_remote_storage_samples_retried_total").values()) == 0
    assert got[over] > 1000 and got[under] > 1000
    assert received == {over: got[over], under: got[under]}, "every sample exactly once, none lost"
    assert writes == batches, "each remote_write request reached the distributor exactly once"
    assert appended == got[over] + got[under]
    assert "cluster.distributor.upstream_rq_total: 0" in e.envoy.stats(), "Envoy never forwards a mirrored copy"
    assert shadow > 0 and denied == 0


def test_full_cuts_the_tenant_over_its_limit_and_loses_nothing_else(edge: list[Edge], tmp_path: Path) -> None:
    over, under = "full-over", "full-under"
    e = Edge(tmp_path, [over, under])
    edge.append(e)
    e.start(phase="full", shadow=False, limits={over: OVER, under: UNDER})
    started = time.monotonic()
    e.wait_for_batches(6)
    sender = e.quiesce()
    elapsed = time.monotonic() - started
    got = delivered(sender)
    failed = per_queue(sender, "prometheus_remote_storage_samples_failed_total")
    received = {t: e.received(t) for t in (over, under)}
    budget = OVER.ingestion_burst_size + OVER.ingestion_rate * elapsed
    assert e.sender is not None
    logged_429 = [line for line in e.sender.log().splitlines() if "429" in line]
    print(
        f"\nfull: delivered {got}, failed (429) {failed}, received {received}, budget of {over} "
        f"{budget:.0f} over {elapsed:.1f} s, sender log lines with 429: {len(logged_429)}"
    )
    assert failed.get(under, 0) == 0 and received[under] == got[under] > 1000, "under its limit: nothing lost"
    assert failed[over] > 0 and logged_429, "over its limit: Prometheus was told 429 and logged it"
    assert 0 < received[over] == got[over] <= budget, "cut to its budget"


def on_each_side(prefix: str) -> list[str]:
    """Two tenants on each side of each canary step, chosen with NGINX's own hash (on_canary)."""
    candidates = [f"{prefix}-{i:03d}" for i in range(400)]
    at10 = [t for t in candidates if on_canary(t, 10)][:2]
    at50 = [t for t in candidates if on_canary(t, 50) and not on_canary(t, 10)][:2]
    at100 = [t for t in candidates if not on_canary(t, 50)][:2]
    return at10 + at50 + at100


def otlp_through(e: Edge, tenants: Sequence[str]) -> set[str]:
    """One OTLP write per tenant through NGINX; the tenants the RLS decided it for."""
    assert e.nginx is not None
    body = request((resource(), every_point_type())).SerializeToString()
    decided = {t: sum(e.rls_requests(t, d) for d in ("allowed", "denied")) for t in tenants}
    for tenant in tenants:
        headers = {"X-Scope-OrgID": tenant, "Content-Type": "application/x-protobuf"}
        post(e.nginx.url, body, headers, path="/otlp/v1/metrics")  # answered 404 by the 2.42 receiver
    return {t for t in tenants if sum(e.rls_requests(t, d) for d in ("allowed", "denied")) > decided[t]}


def test_canary_by_tenant_moves_tenants_one_way(edge: list[Edge], tmp_path: Path) -> None:
    tenants = on_each_side("canary")
    at10 = tenants[:2]
    otlp_tenants = on_each_side("otlp")
    e = Edge(tmp_path, tenants)
    edge.append(e)
    e.start(phase="canary", percent=10, shadow=False, limits=dict.fromkeys(tenants, OVER))
    assert e.nginx is not None
    enforced_before: set[str] = set()
    for percent in (10, 50, 100):
        if percent != 10:
            e.nginx.reload(e.nginx_options("canary", percent))
        before = {t: e.rls_requests(t, "allowed") + e.rls_requests(t, "denied") for t in tenants}
        e.wait_for_batches(2)  # every tenant sent at least twice under this config
        after = {t: e.rls_requests(t, "allowed") + e.rls_requests(t, "denied") for t in tenants}
        enforced = {t for t in tenants if after[t] > before[t]}
        otlp_enforced = otlp_through(e, otlp_tenants)
        print(f"\ncanary {percent}%: enforced {sorted(enforced)}, direct {sorted(set(tenants) - enforced)}")
        print(f"canary {percent}%: OTLP enforced {sorted(otlp_enforced)}")
        assert enforced == {t for t in tenants if on_canary(t, percent)}
        assert otlp_enforced == {t for t in otlp_tenants if on_canary(t, percent)}, "OTLP split like remote_write"
        assert enforced >= enforced_before, "a tenant never moves back"
        enforced_before = enforced
    sender = e.quiesce()
    failed = per_queue(sender, "prometheus_remote_storage_samples_failed_total")
    print(f"canary: samples refused (429) per tenant {failed}")
    assert all(failed.get(t, 0) > 0 for t in at10), "enforced from 10 %: limited"
    assert enforced_before == set(tenants)


def test_emergency_rollback_while_traffic_flows_loses_nothing(edge: list[Edge], tmp_path: Path) -> None:
    over, under = "rollback-over", "rollback-under"
    e = Edge(tmp_path, [over, under])
    edge.append(e)
    e.start(phase="full", shadow=False, limits={over: OVER, under: UNDER})
    assert e.nginx is not None
    e.wait_for_batches(4)
    assert otlp_through(e, ["rollback-otlp"]) == {"rollback-otlp"}, "full: OTLP through the edge"
    enforced_before = e.rls_requests(under, "allowed")
    e.nginx.reload(e.nginx_options("direct"))  # nginx-direct: straight to the distributor
    rolled_back = e.rls_requests(under, "allowed")
    assert otlp_through(e, ["rollback-otlp"]) == set(), "rolled back: OTLP straight to the distributor"
    e.wait_for_batches(4)
    sender = e.quiesce()
    got = delivered(sender)
    failed = per_queue(sender, "prometheus_remote_storage_samples_failed_total")
    received = {t: e.received(t) for t in (over, under)}
    after = e.rls_requests(under, "allowed")
    print(
        f"\nrollback: delivered {got}, failed {failed}, received {received}, RLS decisions for {under}: "
        f"{enforced_before:.0f} before, {rolled_back:.0f} at the reload, {after:.0f} after"
    )
    assert enforced_before > 0 and after == rolled_back, "after the reload nothing goes through the edge"
    assert failed.get(under, 0) == 0 and received[under] == got[under] > 1000, "no sample lost for the compliant"
    assert received[over] == got[over]
