"""Every examples/nginx-*.yaml ConfigMap holds an nginx.conf that the real NGINX accepts and that
routes a write where its phase says.

There is no cluster DNS here, and NGINX resolves `upstream` server names when it loads a config
(`nginx -t` included), so the in-cluster names cannot be resolved. Two checks instead:
- the committed text itself, with only the upstream `server` host:port, the listen address and
  the runtime directory substituted (each exactly once where expected), passes `nginx -t`;
- the same phase rendered by deploy/nginx.py with local addresses (tests/unit/test_nginx_config.py
  proves the committed files are exactly that renderer's output) runs in a real NGINX and sends
  a request to the expected recording upstream.
"""

from __future__ import annotations

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
    MIRROR_PATH,
    NginxOptions,
    on_canary,
    phase_options,
)
from mimir_edge.localstack.nginx import NginxProcess, check_config
from mimir_edge.localstack.processes import MissingProgram

from tests.recording_upstream import RecordingUpstream
from tests.stack import post
from tests.waiting import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_phase_runs_and_routes_a_write_where_it_says(
    name: str, tmp_path: Path, upstreams: tuple[RecordingUpstream, RecordingUpstream]
) -> None:
    envoy, distributor = upstreams
    envoy.reset()
    distributor.reset()
    local = NginxOptions(listen=("127.0.0.1", 0), distributor=distributor.address, envoy=envoy.address)
    try:
        nginx = NginxProcess(tmp_path / "nginx", phase_options(name, local)).start()
    except MissingProgram as exc:
        pytest.fail(str(exc))
    try:
        tenants = [f"tenant-{i}" for i in range(40)]
        statuses = {post(nginx.url, t.encode(), {"X-Scope-OrgID": t}).status for t in tenants}
        if name == "mirror":
            wait_for(lambda: len(envoy.seen) == len(tenants), timeout_s=30, what="the mirrored copies")
    finally:
        nginx.stop()
    assert statuses == {200}
    to_envoy = {s.tenant for s in envoy.seen}
    to_distributor = {s.tenant for s in distributor.seen}
    if name == "direct":
        assert (to_envoy, to_distributor) == (set(), set(tenants))
    elif name == "full":
        assert (to_envoy, to_distributor) == (set(tenants), set())
    elif name == "mirror":
        assert to_envoy == to_distributor == set(tenants)
        assert {s.path for s in envoy.seen} == {MIRROR_PATH}
        assert {s.path for s in distributor.seen} == {"/api/v1/push"}
    else:
        percent = int(name.removeprefix("canary-"))
        assert to_envoy == {t for t in tenants if on_canary(t, percent)}
        assert to_distributor == set(tenants) - to_envoy


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
