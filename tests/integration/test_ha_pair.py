"""A real HA Prometheus pair through the whole edge: two real Prometheus servers (Debian's 2.42)
with `external_labels` cluster=ha-1 and __replica__=replica-1 / replica-2 scrape the same target
(a known number of series) and remote-write as one tenant through real NGINX → real Envoy → two
real RLS replicas on real Redis → a receiving real Prometheus standing in for the distributor.

Mimir charges only the elected replica's samples to the ingestion rate; so must the edge:
- with `accept_ha_samples: true` and an ingestion rate of 1.5× one replica's sample rate, no 429
  in a 60 s run, and the items charged equal the elected replica's samples (within 2 %);
- with `accept_ha_samples: false` the same pair is limited (Prometheus counts the 429s);
- when the elected Prometheus is killed, the other is elected once the elected one has been silent
  for the failover timeout, and its samples are charged from then on.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as sync_redis
import yaml
from mimir_edge import httpd
from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import ha_key
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.deploy.nginx import NginxOptions
from mimir_edge.localstack.envoy import EnvoyProcess
from mimir_edge.localstack.nginx import NginxProcess
from mimir_edge.localstack.processes import MissingProgram, free_port
from mimir_edge.localstack.prometheus import PrometheusProcess, RemoteWrite
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess

from tests.integration.test_rollout_phases import metrics, per_queue, total
from tests.stack import set_limits
from tests.waiting import wait_for

TENANT = "ha-tenant"
PASSWORD = "remote-write"
SERIES = 300
SCRAPE_S = 0.5
#: Each scrape adds Prometheus's own series about the target: up, scrape_duration_seconds,
#: scrape_samples_scraped, scrape_samples_post_metric_relabeling, scrape_series_added.
PER_SCRAPE = SERIES + 5
REPLICA_RATE = PER_SCRAPE / SCRAPE_S
#: Longer than stopping a Prometheus takes, so its last request is read before the failover.
FAILOVER_S = 5.0


def limits(accept_ha: bool) -> TenantLimits:
    return TenantLimits(
        ingestion_rate=1.5 * REPLICA_RATE,  # between 1.2x and 1.8x one replica's rate
        ingestion_burst_size=int(3 * REPLICA_RATE),
        accept_ha_samples=accept_ha,
        ha_tracker_failover_timeout=FAILOVER_S,
    )


def target_page() -> bytes:
    lines = ["# TYPE ha_test_gauge gauge"]
    lines += [f'ha_test_gauge{{shard="{i}"}} {i}' for i in range(SERIES)]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class HaEdge:
    workdir: Path
    target: object | None = None
    redis: RedisServer | None = None
    receiver: PrometheusProcess | None = None
    rls: list[RlsProcess] = field(default_factory=list)
    envoy: EnvoyProcess | None = None
    nginx: NginxProcess | None = None
    replicas: dict[str, PrometheusProcess] = field(default_factory=dict)

    def start(self, tenant_limits: TenantLimits) -> HaEdge:
        try:
            page = target_page()
            target_port = free_port()
            self.target = httpd.serve(
                "127.0.0.1", target_port, {"/metrics": lambda: (200, page, "text/plain; version=0.0.4")}
            )
            self.redis = RedisServer(self.workdir / "redis").start()
            set_limits(self.redis.url, TENANT, tenant_limits)
            self.receiver = PrometheusProcess(self.workdir / "receiver", "receiver", receiver=True).start()
            for _ in range(2):
                self.rls.append(RlsProcess(self.workdir, env={"REDIS_URL": self.redis.url}).start(timeout_s=30))
            self.envoy = EnvoyProcess(
                self.workdir / "envoy",
                EnvoyOptions(
                    rls=tuple(("127.0.0.1", r.authz_http_port) for r in self.rls),  # the default transport
                    upstream=("127.0.0.1", self.receiver.port),
                    mode="full",
                    listen=("127.0.0.1", 0),
                    admin=("127.0.0.1", 0),
                ),
            ).start()
            self.nginx = NginxProcess(
                self.workdir / "nginx",
                NginxOptions(
                    phase="full",
                    listen=("127.0.0.1", 0),
                    distributor=("127.0.0.1", self.receiver.port),
                    envoy=("127.0.0.1", self.envoy.listen_port),
                    basic_auth_tenants=((TENANT, PASSWORD),),
                    upstream_path="/api/v1/write",
                ),
            ).start()
            for name in ("replica-1", "replica-2"):
                self.replicas[name] = PrometheusProcess(
                    self.workdir / name,
                    name,
                    remote_writes=[RemoteWrite(f"{self.nginx.url}/api/v1/push", TENANT, PASSWORD)],
                    targets=[f"127.0.0.1:{target_port}"],
                    scrape_interval_s=SCRAPE_S,
                    external_labels={"cluster": "ha-1", "__replica__": name},
                    self_scrape=False,
                    send_metadata=False,  # metadata-only requests are not HA: charged for both, as in Mimir
                    batch_send_deadline_s=0.25,
                ).start()
        except MissingProgram as exc:
            self.stop()
            pytest.fail(str(exc))
        except BaseException:
            self.stop()
            raise
        return self

    def sent(self, name: str) -> float:
        """Samples a replica got a 2xx for."""
        page = metrics(self.replicas[name].url)
        queue = per_queue(page, "prometheus_remote_storage_samples_total")
        failed = per_queue(page, "prometheus_remote_storage_samples_failed_total")
        retried = per_queue(page, "prometheus_remote_storage_samples_retried_total")
        return queue.get(TENANT, 0) - failed.get(TENANT, 0) - retried.get(TENANT, 0)

    def failed(self, name: str) -> float:
        return per_queue(metrics(self.replicas[name].url), "prometheus_remote_storage_samples_failed_total").get(
            TENANT, 0
        )

    def rls_total(self, name: str, **labels: str) -> float:
        return sum(total(metrics(r.metrics_url.removesuffix("/metrics")), name, **labels) for r in self.rls)

    def elected(self) -> tuple[str, int, int]:
        """(replica, last seen µs, failovers) of cluster ha-1, from the tracker in Redis."""
        assert self.redis is not None
        client = sync_redis.Redis.from_url(self.redis.url)
        try:
            raw = client.hget(ha_key(TENANT), "ha-1")
        finally:
            client.close()
        assert raw is not None, "no HA state for cluster ha-1"
        seen, failovers, replica = raw.decode().split(" ", 2)
        return replica, int(seen), int(failovers)

    def quiesce(self) -> None:
        """Stop both replicas scraping (config reload) and wait until each has sent everything it
        scraped: from then on their counters and the RLS's are final."""
        for replica in self.replicas.values():
            config = replica.config()
            config["scrape_configs"] = []
            (replica.workdir / f"{replica.name}.yml").write_text(yaml.safe_dump(config, sort_keys=False))
            request = urllib.request.Request(f"{replica.url}/-/reload", method="POST")
            with urllib.request.urlopen(request, timeout=10):
                pass

        def drained() -> bool:
            for replica in self.replicas.values():
                page = metrics(replica.url)
                newest = total(page, "prometheus_remote_storage_highest_timestamp_in_seconds")
                sent = total(page, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds")
                if total(page, "prometheus_remote_storage_samples_pending") or sent < newest:
                    return False
            return True

        wait_for(drained, timeout_s=60, interval_s=0.5, what="both replicas to send all they scraped")

    def stop(self) -> None:
        for process in (*self.replicas.values(), self.nginx, self.envoy, *self.rls, self.receiver, self.redis):
            if process is not None:
                process.stop()
        if self.target is not None:
            self.target.shutdown()  # type: ignore[attr-defined]
            self.target.server_close()  # type: ignore[attr-defined]


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[list[HaEdge]]:
    made: list[HaEdge] = []
    yield made
    for e in made:
        e.stop()


def test_ha_pair_is_charged_once_and_never_limited_under_its_rate(edge: list[HaEdge], tmp_path: Path) -> None:
    e = HaEdge(tmp_path)
    edge.append(e)
    e.start(limits(accept_ha=True))
    wait_for(
        lambda: e.sent("replica-1") > 0 and e.sent("replica-2") > 0,
        timeout_s=60,
        interval_s=0.5,
        what="both replicas to deliver samples",
    )
    started = time.monotonic()
    while time.monotonic() - started < 60:  # a 60 s run, watched for any 429
        assert e.failed("replica-1") == 0 and e.failed("replica-2") == 0, "an HA replica got a 429"
        time.sleep(1)
    e.quiesce()
    elected, _, failovers = e.elected()
    sent = {name: e.sent(name) for name in e.replicas}
    other = next(name for name in sent if name != elected)
    charged = e.rls_total("rls_tenant_items_total", tenant=TENANT, decision="allowed")
    duplicates = e.rls_total("rls_tenant_items_total", tenant=TENANT, decision="non_elected")
    print(
        f"\nHA pair at {REPLICA_RATE:.0f} samples/s per replica, ingestion_rate {1.5 * REPLICA_RATE:.0f}: "
        f"delivered {sent}, elected {elected} (failovers {failovers}), charged {charged:.0f}, "
        f"forwarded uncharged (non_elected) {duplicates:.0f}"
    )
    assert e.failed("replica-1") == 0 and e.failed("replica-2") == 0, "an HA replica got a 429"
    assert failovers == 0
    assert sent[elected] > 60 * REPLICA_RATE * 0.5, "the elected replica sent for the whole run"
    assert charged == pytest.approx(sent[elected], rel=0.02), "charged: the elected replica's samples"
    assert duplicates == pytest.approx(sent[other], rel=0.02), "the other's: forwarded, not charged"


def test_without_accept_ha_samples_the_same_pair_is_limited(edge: list[HaEdge], tmp_path: Path) -> None:
    e = HaEdge(tmp_path)
    edge.append(e)
    e.start(limits(accept_ha=False))
    # Both replicas charged: 2x one replica's rate against 1.5x: Prometheus is told 429 (and drops
    # the batch, as it does when Mimir answers 429).
    wait_for(
        lambda: e.failed("replica-1") + e.failed("replica-2") > 0,
        timeout_s=90,
        interval_s=0.5,
        what="Prometheus to count 429s",
    )
    denied = e.rls_total("rls_tenant_requests_total", tenant=TENANT, decision="denied")
    duplicates = e.rls_total("rls_tenant_requests_total", tenant=TENANT, decision="non_elected")
    print(f"\nwithout accept_ha_samples: RLS denied {denied:.0f} requests, non_elected {duplicates:.0f}")
    assert denied > 0 and duplicates == 0


def test_killing_the_elected_replica_fails_over_to_the_other(edge: list[HaEdge], tmp_path: Path) -> None:
    e = HaEdge(tmp_path)
    edge.append(e)
    e.start(limits(accept_ha=True))
    wait_for(
        lambda: e.sent("replica-1") > 0 and e.sent("replica-2") > 0,
        timeout_s=60,
        interval_s=0.5,
        what="both replicas to deliver samples",
    )
    elected, _, _ = e.elected()
    survivor = next(name for name in e.replicas if name != elected)
    charged_before = e.rls_total("rls_tenant_items_total", tenant=TENANT, decision="allowed")
    e.replicas[elected].stop()  # by PID; it sends what it has queued first, then nothing
    still, last_seen_us, _ = e.elected()
    assert still == elected, "failed over before the killed replica had stopped: raise FAILOVER_S"

    def failed_over() -> tuple[str, int, int] | None:
        state = e.elected()
        return state if state[0] == survivor else None

    new, elected_at_us, failovers = wait_for(
        failed_over, timeout_s=FAILOVER_S + 30, interval_s=0.1, what=f"{survivor} to be elected"
    )
    # Measured on the tracker's own clock (Redis TIME): from the dead replica's last request to
    # the survivor's election.
    gap_s = (elected_at_us - last_seen_us) / 1e6
    print(f"\nfailover: {elected} killed, {new} elected {gap_s:.2f} s after {elected}'s last request")
    assert failovers == 1
    assert FAILOVER_S <= gap_s <= FAILOVER_S + 1.0
    wait_for(
        lambda: (
            e.rls_total("rls_tenant_items_total", tenant=TENANT, decision="allowed") > charged_before + 10 * PER_SCRAPE
        ),
        timeout_s=30,
        interval_s=0.5,
        what=f"{survivor}'s samples to be charged",
    )
    assert e.failed(survivor) == 0
