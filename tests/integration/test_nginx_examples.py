"""Every examples/nginx-*.yaml ConfigMap holds an nginx.conf that the real NGINX accepts and that
routes a write, remote_write and OTLP alike, where its phase says; every other path gets the same
answer in every phase (a 404 naming the writes served, or Mimir's own answer with --passthrough).

There is no cluster DNS here, and NGINX resolves `upstream` server names when it loads a config
(`nginx -t` included), so the in-cluster names cannot be resolved. Two checks instead:
- the committed text itself, with only the upstream `server` host:port, the listen address and
  the runtime directory substituted (each exactly once where expected), passes `nginx -t`;
- the same phase rendered by deploy/nginx.py with local addresses (tests/unit/test_nginx_config.py
  proves the committed files are exactly that renderer's output) runs in a real NGINX and sends
  a request to the expected recording upstream.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mimir_edge.deploy.nginx import (
    DEFAULT_DISTRIBUTOR,
    DEFAULT_ENVOY,
    EXAMPLE_NAMES,
    INFLUX_PATH,
    MIRROR_OTLP_PATH,
    MIRROR_PATH,
    OTLP_PATH,
    NginxOptions,
    on_canary,
    phase_options,
)
from mimir_edge.localstack.nginx import NginxProcess, check_config
from mimir_edge.localstack.processes import MissingProgram

from tests.recording_upstream import RecordingUpstream, Seen
from tests.stack import post
from tests.waiting import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROTOBUF = "application/x-protobuf"


def committed_conf(name: str) -> str:
    doc = yaml.safe_load((EXAMPLES / f"nginx-{name}.yaml").read_text())
    assert doc["kind"] == "ConfigMap" and doc["apiVersion"] == "v1"
    assert doc["metadata"]["annotations"]["mimir-edge.io/phase"] == name
    return str(doc["data"]["nginx.conf"])


def substitute(text: str, old: str, new: str, count: int) -> str:
    assert text.count(old) == count, f"expected {count} x {old!r}"
    return text.replace(old, new)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_committed_example_passes_nginx_t(name: str, tmp_path: Path) -> None:
    text = committed_conf(name)
    text = substitute(text, "server {}:{};".format(*DEFAULT_DISTRIBUTOR), "server 127.0.0.1:9;", 1)
    text = substitute(text, "server {}:{};".format(*DEFAULT_ENVOY), "server 127.0.0.1:9;", 0 if name == "direct" else 1)
    text = substitute(text, "listen 0.0.0.0:8080;", "listen 127.0.0.1:9;", 1)
    text = re.sub(r"(?m)(^|\s)/tmp/", rf"\g<1>{tmp_path}/", text)
    assert "/tmp/" not in text.replace(str(tmp_path), "")
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    try:
        checked = check_config(config, tmp_path)
    except MissingProgram as exc:
        pytest.fail(str(exc))
    assert checked.returncode == 0, checked.stderr
    assert "[warn]" not in checked.stderr and "[emerg]" not in checked.stderr, checked.stderr


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[RecordingUpstream, RecordingUpstream]]:
    envoy = RecordingUpstream("envoy", keep_bodies=True).start()
    distributor = RecordingUpstream("distributor", keep_bodies=True).start()
    yield envoy, distributor
    envoy.stop()
    distributor.stop()


def start(options: NginxOptions, workdir: Path) -> NginxProcess:
    try:
        return NginxProcess(workdir, options).start()
    except MissingProgram as exc:
        pytest.fail(str(exc))


def sides(seen: list[Seen], path: str) -> set[str]:
    return {s.tenant for s in seen if s.path == path}


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_phase_runs_and_routes_both_write_protocols_where_it_says(
    name: str, tmp_path: Path, upstreams: tuple[RecordingUpstream, RecordingUpstream]
) -> None:
    envoy, distributor = upstreams
    envoy.reset()
    distributor.reset()
    local = NginxOptions(listen=("127.0.0.1", 0), distributor=distributor.address, envoy=envoy.address)
    nginx = start(phase_options(name, local), tmp_path / "nginx")
    try:
        tenants = [f"tenant-{i}" for i in range(40)]
        statuses = {post(nginx.url, t.encode(), {"X-Scope-OrgID": t}).status for t in tenants}
        otlp = {
            t: post(nginx.url, b"otlp-" + t.encode(), {"X-Scope-OrgID": t, "Content-Type": PROTOBUF}, path=OTLP_PATH)
            for t in tenants
        }
        if name == "mirror":
            wait_for(lambda: len(envoy.seen) == 2 * len(tenants), timeout_s=30, what="the mirrored copies")
    finally:
        nginx.stop()
    assert statuses == {200}
    # The OTLP client hears the upstream its phase names (mirror: the distributor).
    answered_by_envoy = {t for t, r in otlp.items() if (r.status, r.body) == (200, b"envoy")}
    answered_by_distributor = {t for t, r in otlp.items() if (r.status, r.body) == (200, b"distributor")}
    assert answered_by_distributor == set(tenants) - answered_by_envoy
    # Each body arrives unchanged, its Content-Type with it (OTLP's protobuf/JSON choice).
    for seen in (*envoy.seen, *distributor.seen):
        assert seen.body == (b"otlp-" if OTLP_PATH in seen.path else b"") + seen.tenant.encode()
        if OTLP_PATH in seen.path:
            assert seen.headers["content-type"] == PROTOBUF
    rw_path, otlp_path = "/api/v1/push", OTLP_PATH
    if name == "mirror":
        rw_path, otlp_path = MIRROR_PATH, MIRROR_OTLP_PATH
        assert {s.path for s in envoy.seen} == {MIRROR_PATH, MIRROR_OTLP_PATH}
        assert {s.path for s in distributor.seen} == {"/api/v1/push", OTLP_PATH}
        assert sides(distributor.seen, "/api/v1/push") == sides(distributor.seen, OTLP_PATH) == set(tenants)
    to_envoy, otlp_to_envoy = sides(envoy.seen, rw_path), sides(envoy.seen, otlp_path)
    to_distributor = sides(distributor.seen, "/api/v1/push")
    # A tenant is on the edge for both protocols or for neither.
    assert otlp_to_envoy == to_envoy
    assert answered_by_envoy == (set() if name == "mirror" else to_envoy)
    if name != "mirror":
        assert sides(distributor.seen, OTLP_PATH) == to_distributor
    if name == "direct":
        assert (to_envoy, to_distributor) == (set(), set(tenants))
    elif name == "full":
        assert (to_envoy, to_distributor) == (set(tenants), set())
    elif name == "mirror":
        assert to_envoy == to_distributor == set(tenants)
    else:
        percent = int(name.removeprefix("canary-"))
        assert to_envoy == {t for t in tenants if on_canary(t, percent)}
        assert to_distributor == set(tenants) - to_envoy


OTHER_PATHS = [
    ("GET", "/prometheus/api/v1/query?query=up&time=1"),
    ("POST", "/prometheus/api/v1/query_range"),
    ("GET", "/prometheus/config/v1/rules"),
    ("GET", "/alertmanager/api/v2/alerts"),
    ("POST", "/api/v1/push/"),
    ("POST", "/otlp/v1/metrics/extra"),
]


def request(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=b"q=1" if method == "POST" else None, headers=headers)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_other_paths_get_a_404_naming_the_writes_served_in_every_phase(
    name: str, tmp_path: Path, upstreams: tuple[RecordingUpstream, RecordingUpstream]
) -> None:
    envoy, distributor = upstreams
    envoy.reset()
    distributor.reset()
    local = NginxOptions(listen=("127.0.0.1", 0), distributor=distributor.address, envoy=envoy.address)
    nginx = start(phase_options(name, local), tmp_path / "nginx")
    try:
        answers = [request(nginx.listen_port, m, p, {"X-Scope-OrgID": "t"}) for m, p in OTHER_PATHS]
        influx = request(nginx.listen_port, "POST", INFLUX_PATH + "?db=x", {"X-Scope-OrgID": "t"})
    finally:
        nginx.stop()
    expected = b"this NGINX serves only the writes /api/v1/push and /otlp/v1/metrics; queries, rules and "
    assert answers == [(404, expected + b"Alertmanager go to Mimir directly\n")] * len(OTHER_PATHS)
    assert influx[0] == 404 and b"Influx writes are not enforced" in influx[1]
    assert envoy.seen == distributor.seen == []


@pytest.mark.parametrize("name", ["direct", "mirror", "canary-50", "full"])
def test_passthrough_passes_every_other_path_untouched_and_never_an_uncounted_write(
    name: str, tmp_path: Path, upstreams: tuple[RecordingUpstream, RecordingUpstream]
) -> None:
    envoy, distributor = upstreams
    envoy.reset()
    distributor.reset()
    mimir = RecordingUpstream("mimir", keep_bodies=True).start()
    try:
        local = NginxOptions(
            listen=("127.0.0.1", 0), distributor=distributor.address, envoy=envoy.address, passthrough=mimir.address
        )
        nginx = start(phase_options(name, local), tmp_path / "nginx")
        try:
            answers = [request(nginx.listen_port, m, p, {"X-Scope-OrgID": "t"}) for m, p in OTHER_PATHS]
            influx = request(nginx.listen_port, "POST", INFLUX_PATH, {"X-Scope-OrgID": "t"})
            write = post(nginx.url, b"w", {"X-Scope-OrgID": "t"}, path=OTLP_PATH)
        finally:
            nginx.stop()
    finally:
        mimir.stop()
    assert answers == [(200, b"mimir")] * len(OTHER_PATHS)
    assert [s.path for s in mimir.seen] == [p for _, p in OTHER_PATHS]  # query strings included
    assert {s.tenant for s in mimir.seen} == {"t"}
    assert [s.body for s in mimir.seen if s.path.endswith("query_range")] == [b"q=1"]
    assert influx[0] == 404  # a write the edge cannot count never goes around it
    assert write.status == 200 and write.body in (b"envoy", b"distributor")  # writes still go by phase
    assert all(s.path != INFLUX_PATH for s in (*envoy.seen, *distributor.seen))


@pytest.mark.parametrize("kube_version", ["1.29.0", "1.33.0"])
def test_example_manifests_pass_kubernetes_validate(kube_version: str) -> None:
    beside = Path(sys.executable).parent / "kubernetes-validate"
    binary = str(beside) if beside.exists() else shutil.which("kubernetes-validate")
    if not binary:
        pytest.fail("kubernetes-validate is not installed: .venv/bin/pip install kubernetes-validate")
    files = sorted(str(p) for p in [*EXAMPLES.glob("nginx-*.yaml"), *EXAMPLES.glob("hpa-*.yaml")])
    assert len(files) == len(EXAMPLE_NAMES) + 2
    checked = subprocess.run(
        [binary, "--strict", "-k", kube_version, *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
