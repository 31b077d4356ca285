"""Helm and kubernetes-validate for the chart tests: where they are, how to run them offline, and
how to read what `helm template` renders.

Both are real programs: helm from `tools/fetch-k8s-tools.sh` (into .tools/bin) or PATH,
kubernetes-validate from the venv. A missing one fails the test with how to install it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHARTS = ROOT / "charts"
UMBRELLA = CHARTS / "mimir-edge-enforcement"
COMPONENT_CHARTS = ("mimir-rls", "envoy", "overrides-sync")
ENVIRONMENTS = ("dev", "staging", "production")
NAMESPACE = "mimir-edge-enforcement"
RELEASE = "mimir-edge-enforcement"
KUBE_VERSIONS = ("1.29.0", "1.33.0")

Manifest = dict[str, Any]


def values_file(environment: str) -> Path:
    return UMBRELLA / f"values-{environment}.yaml"


def helm_binary() -> str:
    """helm from .tools/bin (tools/fetch-k8s-tools.sh) or PATH; fails the test otherwise."""
    local = ROOT / ".tools" / "bin" / "helm"
    found = str(local) if local.exists() else shutil.which("helm")
    if not found:
        pytest.fail("helm is not installed: run bash tools/fetch-k8s-tools.sh")
    return found


def kubernetes_validate_binary() -> str:
    beside = Path(sys.executable).parent / "kubernetes-validate"
    found = str(beside) if beside.exists() else shutil.which("kubernetes-validate")
    if not found:
        pytest.fail("kubernetes-validate is not installed: .venv/bin/pip install kubernetes-validate")
    return found


class HelmFailed(AssertionError):
    """helm exited non-zero; the message carries its stderr."""


@dataclass(frozen=True)
class Helm:
    binary: str
    #: HOME and the HELM_*_HOME directories: a fresh temp dir, so no user config or cache is used.
    home: Path

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, timeout=60, env=self.env(), check=False
        )
        if done.returncode != 0:
            raise HelmFailed(f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
        return done.stdout

    def lint(self, chart: Path, values: Sequence[Path] = ()) -> str:
        return self.run("lint", "--strict", str(chart), *_values_args(values))

    def template(
        self,
        chart: Path,
        values: Sequence[Path] = (),
        sets: Mapping[str, str] | None = None,
        *,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
        kube_version: str = KUBE_VERSIONS[-1],
    ) -> list[Manifest]:
        """The manifests `helm template` renders (test hooks included), parsed."""
        args = ["template", release, str(chart), "--namespace", namespace, "--kube-version", kube_version]
        args += _values_args(values)
        for key, value in (sets or {}).items():
            args += ["--set", f"{key}={value}"]
        return [doc for doc in yaml.safe_load_all(self.run(*args)) if doc]


def _values_args(values: Iterable[Path]) -> list[str]:
    return [arg for path in values for arg in ("-f", str(path))]


def kinds(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: Iterable[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(manifests: Iterable[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(kind/name, pod spec) of every Deployment and bare Pod (helm test hooks)."""
    for m in manifests:
        if m["kind"] == "Deployment":
            yield f"Deployment/{m['metadata']['name']}", m["spec"]["template"]["spec"]
        elif m["kind"] == "Pod":
            yield f"Pod/{m['metadata']['name']}", m["spec"]


def container(deployment: Manifest, name: str) -> Manifest:
    found: list[Manifest] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(found) == 1, f"no container {name} in {deployment['metadata']['name']}"
    return found[0]


def env_of(c: Manifest) -> dict[str, Manifest]:
    """A container's env entries by name (a duplicate name fails)."""
    entries = c.get("env", [])
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env vars in {c['name']}: {names}"
    return {e["name"]: e for e in entries}


def env_values(c: Manifest) -> dict[str, str]:
    """Plain `value:` env entries only (secretKeyRef ones are left out)."""
    return {name: e["value"] for name, e in env_of(c).items() if "value" in e}


def container_port(c: Manifest, port: int | str) -> int:
    """A probe's port (a number or a container port name) as a number."""
    if isinstance(port, int):
        return port
    by_name = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    assert port in by_name, f"container {c['name']} has no port named {port}"
    return int(by_name[port])


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
