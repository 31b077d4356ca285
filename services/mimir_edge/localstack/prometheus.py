"""Real Prometheus processes (Debian's `prometheus`, 2.42) for end-to-end tests: a sender that
scrapes and remote-writes through the edge, and a receiver (`--web.enable-remote-write-receiver`)
standing in for Mimir's distributor.

Prometheus 2.42 does not send custom headers on remote_write, but it does send `basic_auth`:
each remote_write queue gets the tenant as its user, and NGINX maps the user to X-Scope-OrgID.
Each queue also stamps its samples with a `tenant` label, so the receiver can tell them apart.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mimir_edge.localstack.processes import Process, find_program, free_port

HOST = "127.0.0.1"
INSTALL_HINT = "apt-get install prometheus (Debian's Prometheus 2.42)"


def duration(seconds: float) -> str:
    """A Prometheus duration: whole milliseconds ("500ms", "1000ms")."""
    return f"{round(seconds * 1000)}ms"


def prometheus_binary() -> str:
    return find_program("prometheus", INSTALL_HINT)


@dataclass(frozen=True, slots=True)
class RemoteWrite:
    """One remote_write queue: the tenant is the basic-auth user and a label on every sample."""

    url: str
    tenant: str
    password: str = "remote-write"


@dataclass
class PrometheusProcess:
    workdir: Path
    name: str
    remote_writes: Sequence[RemoteWrite] = ()
    #: Extra scrape targets (host:port) besides Prometheus itself.
    targets: Sequence[str] = ()
    scrape_interval_s: float = 1.0
    receiver: bool = False
    #: Added to every series it sends: an HA pair's `cluster` and `__replica__`.
    external_labels: Mapping[str, str] = field(default_factory=dict)
    #: Scrape itself besides `targets` (off: only `targets`, a known number of series).
    self_scrape: bool = True
    #: Send metric metadata (Prometheus sends it once a minute, in requests of its own).
    send_metadata: bool = True
    batch_send_deadline_s: float = 1.0
    port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def config(self) -> dict[str, Any]:
        interval = duration(self.scrape_interval_s)
        own = [f"{HOST}:{self.port}"] if self.self_scrape else []
        scrape = [
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [*own, *self.targets]}],
            }
        ]
        global_config: dict[str, Any] = {"scrape_interval": interval, "evaluation_interval": interval}
        if self.external_labels:
            global_config["external_labels"] = dict(self.external_labels)
        config: dict[str, Any] = {
            "global": global_config,
            "scrape_configs": [] if self.receiver else scrape,
        }
        if self.remote_writes:
            config["remote_write"] = [
                {
                    "name": rw.tenant,
                    "url": rw.url,
                    "basic_auth": {"username": rw.tenant, "password": rw.password},
                    "remote_timeout": "5s",
                    # Short batches and quick retries, so a test sees results in seconds.
                    "metadata_config": {"send": self.send_metadata},
                    "queue_config": {
                        "batch_send_deadline": duration(self.batch_send_deadline_s),
                        "max_samples_per_send": 2000,
                        "min_backoff": "100ms",
                        "max_backoff": "1s",
                        # Like Mimir's clients by default: a 429 drops the batch (and is logged).
                        "retry_on_http_429": False,
                    },
                    "write_relabel_configs": [{"target_label": "tenant", "replacement": rw.tenant}],
                }
                for rw in self.remote_writes
            ]
        return config

    def start(self, timeout_s: float = 30.0) -> PrometheusProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / f"{self.name}.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        argv = [
            prometheus_binary(),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={HOST}:{self.port}",
            "--storage.remote.flush-deadline=5s",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        if self.receiver:
            argv.append("--web.enable-remote-write-receiver")
        self.process = Process(f"prometheus-{self.name}:{self.port}", argv, self.workdir / f"{self.name}.log")
        self.process.start(self._ready, timeout_s=timeout_s)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=0.5) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            answer = json.loads(reply.read())
        if answer.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {answer}")
        return list(answer["data"]["result"])

    def value(self, promql: str, at: float | None = None) -> float:
        """A query that yields one number (0 when it yields nothing)."""
        result = self.query(promql, at)
        return float(result[0]["value"][1]) if result else 0.0

    def by_label(self, promql: str, label: str, at: float | None = None) -> Mapping[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql, at)}

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace") if self.process else ""

    def stop(self) -> None:
        if self.process:
            self.process.stop(timeout_s=20)
