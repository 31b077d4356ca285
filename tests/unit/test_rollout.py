"""`mimir-edge rollout`: the exact kubectl commands of each phase (--dry-run), and a whole rollout
mirror → canary → full → rollback against a fake `kubectl`.

The fake is a real executable written into tmp_path and put first on PATH: a test double for a
Kubernetes cluster we do not have here. It records its argv, keeps the ConfigMaps applied to it
and the Deployments' env in a JSON file, answers `get configmap … -o json` from it, and fails the
commands a test tells it to.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mimir_edge import cli
from mimir_edge.deploy.envoy import EnvoyOptions, render_yaml

ROOT = Path(__file__).resolve().parents[2]

FAKE_KUBECTL = """#!{python}
import json, os, sys
from pathlib import Path
import yaml

state_path = Path(os.environ["FAKE_KUBECTL_STATE"])
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
state = json.loads(state_path.read_text())
args = sys.argv[1:]
if args[:1] == ["--context"]:
    args = args[2:]
if args[:1] == ["-n"]:
    args = args[2:]
if any(args[: len(f)] == f for f in state.get("fail", [])):
    sys.exit("error: simulated failure of " + " ".join(args))
if args[:2] == ["get", "configmap"]:
    found = state["configmaps"].get(args[2])
    if found is None:
        if "--ignore-not-found" in args:
            sys.exit(0)
        sys.exit('Error from server (NotFound): configmaps "%s" not found' % args[2])
    print(json.dumps(found))
elif args[:2] == ["apply", "-f"]:
    doc = yaml.safe_load(Path(args[2]).read_text())
    state["configmaps"][doc["metadata"]["name"]] = doc
    print("configmap/%s configured" % doc["metadata"]["name"])
elif args[:2] == ["set", "env"]:
    name, value = args[3].split("=", 1)
    state["env"].setdefault(args[2], {{}})[name] = value
    print("%s env updated" % args[2])
elif args[:2] == ["rollout", "restart"]:
    state["restarts"].append(args[2])
    print("%s restarted" % args[2])
elif args[:2] == ["rollout", "status"]:
    print('deployment "%s" successfully rolled out' % args[2].split("/")[1])
else:
    sys.exit("fake kubectl: unexpected " + " ".join(args))
state_path.write_text(json.dumps(state))
"""


def envoy_configmap(mode: str) -> dict[str, object]:
    options = EnvoyOptions(rls=(("mimir-rls", 8081),), upstream=("mimir-distributor", 8080), mode=mode)
    return {"kind": "ConfigMap", "metadata": {"name": "mimir-envoy"}, "data": {"envoy.yaml": render_yaml(options)}}


@dataclass
class FakeCluster:
    state_path: Path
    log_path: Path

    @property
    def state(self) -> dict:  # type: ignore[type-arg]
        return dict(json.loads(self.state_path.read_text()))

    def update(self, **changes: object) -> None:
        self.state_path.write_text(json.dumps(self.state | changes))

    def set_envoy(self, mode: str) -> None:
        self.update(configmaps=self.state["configmaps"] | {"mimir-envoy": envoy_configmap(mode)})

    def commands(self) -> list[str]:
        """Every kubectl command line run so far (and forget them)."""
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        self.log_path.unlink(missing_ok=True)
        return [" ".join(["kubectl", *json.loads(line)]) for line in lines]

    def phase(self) -> str:
        return str(self.state["configmaps"]["mimir-edge-nginx"]["metadata"]["annotations"]["mimir-edge.io/phase"])


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable))
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    fake = FakeCluster(tmp_path / "cluster.json", tmp_path / "kubectl.log")
    fake.state_path.write_text(json.dumps({"configmaps": {}, "env": {}, "restarts": [], "fail": []}))
    fake.set_envoy("mirror")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBECTL_STATE", str(fake.state_path))
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(fake.log_path))
    monkeypatch.chdir(ROOT)  # the default --examples-dir is ./examples (made absolute by the CLI)
    return fake


def rollout(*args: str) -> int:
    return cli.main(["rollout", *args])


READ_NGINX = "kubectl -n mimir-edge-enforcement get configmap mimir-edge-nginx -o json --ignore-not-found"
READ_ENVOY = "kubectl -n mimir-edge-enforcement get configmap mimir-envoy -o json"


def rls(value: str) -> list[str]:
    return [
        f"kubectl -n mimir-edge-enforcement set env deployment/mimir-rls ENFORCEMENT_DISABLED={value}",
        "kubectl -n mimir-edge-enforcement rollout status deployment/mimir-rls --timeout=5m",
    ]


def nginx(phase: str) -> list[str]:
    return [
        f"kubectl -n mimir-edge-enforcement apply -f {ROOT}/examples/nginx-{phase}.yaml",
        "kubectl -n mimir-edge-enforcement rollout restart deployment/mimir-edge-nginx",
        "kubectl -n mimir-edge-enforcement rollout status deployment/mimir-edge-nginx --timeout=5m",
    ]


EXPECTED = {
    "mirror": [READ_NGINX, *rls("true"), *nginx("mirror")],
    **{f"canary-{p}": [READ_NGINX, READ_ENVOY, *rls("false"), *nginx(f"canary-{p}")] for p in (10, 25, 50, 75, 100)},
    "full": [READ_NGINX, READ_ENVOY, *rls("false"), *nginx("full")],
    "rollback": nginx("direct"),
}


@pytest.mark.parametrize("target", list(EXPECTED))
def test_dry_run_prints_every_command_and_runs_none(
    target: str, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rollout(target, "--dry-run") == 0
    out = capsys.readouterr().out
    assert [line.removeprefix("  $ ") for line in out.splitlines() if line.startswith("  $ ")] == EXPECTED[target]
    assert cluster.commands() == []


def test_dry_run_with_context_and_other_names(cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["canary-10", "--dry-run", "--context", "prod", "--namespace", "ingress", "--rls-namespace", "edge"]
    assert rollout(*args, "--rls-deployment", "rls", "--nginx-deployment", "gw", "--timeout", "90s") == 0
    commands = [line[4:] for line in capsys.readouterr().out.splitlines() if line.startswith("  $ ")]
    assert commands == [
        "kubectl --context prod -n ingress get configmap mimir-edge-nginx -o json --ignore-not-found",
        "kubectl --context prod -n edge get configmap mimir-envoy -o json",
        "kubectl --context prod -n edge set env deployment/rls ENFORCEMENT_DISABLED=false",
        "kubectl --context prod -n edge rollout status deployment/rls --timeout=90s",
        f"kubectl --context prod -n ingress apply -f {ROOT}/examples/nginx-canary-10.yaml",
        "kubectl --context prod -n ingress rollout restart deployment/gw",
        "kubectl --context prod -n ingress rollout status deployment/gw --timeout=90s",
    ]


def test_the_whole_rollout_and_the_emergency_rollback(cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert rollout("mirror") == 0  # no NGINX ConfigMap yet: the cluster counts as direct
    assert cluster.commands() == EXPECTED["mirror"]
    assert cluster.phase() == "mirror"
    assert cluster.state["env"]["deployment/mimir-rls"] == {"ENFORCEMENT_DISABLED": "true"}

    # Envoy still in mirror mode would answer canary writes with 204 and drop them: refused, nothing changed.
    assert rollout("canary-10") == 1
    assert "mirror mode" in capsys.readouterr().err
    assert cluster.commands() == [READ_NGINX, READ_ENVOY]
    assert cluster.phase() == "mirror"

    cluster.set_envoy("canary")
    for phase in ("canary-10", "canary-25", "canary-50", "canary-75", "canary-100", "full"):
        assert rollout(phase) == 0, capsys.readouterr().err
        assert cluster.commands() == EXPECTED[phase]
        assert cluster.phase() == phase
        assert cluster.state["env"]["deployment/mimir-rls"] == {"ENFORCEMENT_DISABLED": "false"}
    assert "done: NGINX runs full" in capsys.readouterr().out

    assert rollout("rollback") == 0
    assert cluster.commands() == EXPECTED["rollback"]
    assert cluster.phase() == "direct"
    assert cluster.state["restarts"] == ["deployment/mimir-edge-nginx"] * 8


def test_skipping_forward_is_refused_unless_forced(cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert rollout("mirror") == 0
    cluster.commands()
    cluster.set_envoy("canary")
    assert rollout("canary-50") == 1
    assert "would skip canary-10, canary-25" in capsys.readouterr().err
    assert cluster.commands() == [READ_NGINX]  # refused before any change
    assert rollout("full", "--force") == 0
    assert cluster.commands() == rls("false") + nginx("full")  # --force: no checks, no reads
    assert cluster.phase() == "full"


def test_going_back_is_allowed(cluster: FakeCluster) -> None:
    cluster.set_envoy("canary")
    assert rollout("canary-50", "--force") == 0
    cluster.commands()
    assert rollout("canary-25") == 0
    assert cluster.phase() == "canary-25"
    assert rollout("mirror") == 0  # mirror copies go to a path the distributor does not ingest
    assert cluster.commands()[-3:] == nginx("mirror")


def test_direct_to_canary_without_mirror_is_refused(cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.set_envoy("canary")
    assert rollout("canary-10") == 1
    assert "would skip mirror" in capsys.readouterr().err


def test_a_failing_step_stops_and_says_how_to_roll_back(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.update(fail=[["rollout", "status", "deployment/mimir-edge-nginx"]])
    assert rollout("mirror") == 1
    out = capsys.readouterr().out
    assert "simulated failure" in out and "mimir-edge rollout rollback" in out
    assert cluster.commands() == EXPECTED["mirror"]  # the failed one was the last


def test_a_configmap_not_applied_by_the_tool_is_refused(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.update(configmaps={"mimir-edge-nginx": {"metadata": {"name": "mimir-edge-nginx"}}})
    assert rollout("mirror") == 1
    assert "no known mimir-edge.io/phase" in capsys.readouterr().err


def test_examples_for_another_configmap_name_are_refused_before_any_kubectl(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rollout("mirror", "--configmap", "other") == 1
    err = capsys.readouterr().err
    assert "is ConfigMap 'mimir-edge-nginx', not 'other'" in err
    assert f"render-nginx --all-examples {ROOT}/examples --configmap other" in err
    assert cluster.commands() == []


def test_envoy_check_can_be_skipped(cluster: FakeCluster) -> None:
    assert rollout("mirror") == 0
    cluster.commands()
    assert rollout("canary-10", "--skip-envoy-check") == 0
    assert cluster.commands() == [READ_NGINX, *rls("false"), *nginx("canary-10")]
