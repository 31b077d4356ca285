"""The Grafana dashboard and the alert rules name only metrics that exist: every name they use
is checked against the live /metrics of a real RLS and a real overrides-sync. Every exported
metric has a HELP text."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mimir_edge.localstack.sync import SyncProcess
from prometheus_client.parser import text_string_to_metric_families

from tests.admin_fleet import Fleet

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
METRIC = re.compile(r"\b((?:rls|overrides_sync)_[a-z0-9_]+)\b")
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, SyncProcess]]:
    workdir = tmp_path_factory.mktemp("monitoring")
    f = Fleet(workdir)
    sync = None
    try:
        f.start(replicas=1)
        overrides = workdir / "overrides.yaml"
        overrides.write_text("overrides:\n  tenant-a:\n    ingestion_rate: 1\n")
        assert f.redis is not None
        sync = SyncProcess(workdir, ["--source", "file", "--path", str(overrides)], env={"REDIS_URL": f.redis.url})
        sync.start()
        f.push("tenant-a", 10, 3)
        yield f, sync
    finally:
        if sync:
            sync.stop()
        f.stop()


def families(text: str) -> dict[str, str]:
    """Family name → HELP text (prometheus-client strips _total from counter family names)."""
    return {family.name: family.documentation for family in text_string_to_metric_families(text)}


def used_names() -> dict[str, set[str]]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = {
        "grafana-dashboard.json": [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        + [v.get("query", "") for v in dashboard["templating"]["list"] if isinstance(v.get("query"), str)],
        "prometheus-rules.yaml": [
            rule["expr"]
            for group in yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())["spec"]["groups"]
            for rule in group["rules"]
        ],
    }
    return {source: {m for e in found for m in METRIC.findall(e)} for source, found in exprs.items()}


def base_name(name: str, known: set[str]) -> str:
    if name in known:
        return name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in known:
            return name.removesuffix(suffix)
    return name


def test_dashboard_json_is_generated_from_its_script() -> None:
    sys.path.insert(0, str(MONITORING))
    try:
        import dashboard  # monitoring/dashboard.py
    finally:
        sys.path.remove(str(MONITORING))
    committed = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert committed == dashboard.build(), "run `python monitoring/dashboard.py` and commit the result"


def test_every_metric_in_dashboard_and_alerts_exists_with_help(fleet: tuple[Fleet, SyncProcess]) -> None:
    f, sync = fleet
    with urllib.request.urlopen(f.replicas[0].metrics_url, timeout=5) as reply:
        exported = families(reply.read().decode()) | families(sync.metrics())
    exported = {name: help_text for name, help_text in exported.items() if METRIC.fullmatch(name)}
    known = set(exported)
    used = used_names()
    print(f"\nexported {len(known)} families; used: " + ", ".join(f"{k}: {len(v)}" for k, v in used.items()))
    for source, names in used.items():
        assert len(names) >= 8, f"{source} uses suspiciously few metrics: {names}"
        missing = sorted(n for n in names if base_name(n, known) not in known)
        assert not missing, f"{source} uses metrics nothing exports: {missing}"
    undocumented = sorted(name for name, help_text in exported.items() if len(help_text) < 10)
    assert not undocumented, f"metrics without a HELP text: {undocumented}"
    # The alerts cover what the issue lists: deny rate, breaker, sync staleness, latency.
    rules = " ".join(sorted(used["prometheus-rules.yaml"]))
    for needed in ("rls_decisions_total", "rls_redis_breaker_open", "overrides_sync_last_success_timestamp_seconds"):
        assert needed in rules
    assert "rls_check_duration_seconds_bucket" in rules


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt-get install prometheus (it ships promtool)")
    rules = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())["spec"]
    plain = tmp_path / "rules.yaml"
    plain.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(plain)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rls_says_which_counter_it_runs(fleet: tuple[Fleet, SyncProcess]) -> None:
    f, _ = fleet
    rls = f.replicas[0]
    with urllib.request.urlopen(rls.metrics_url, timeout=5) as reply:
        text = reply.read().decode()
    gauges = {
        sample.labels["impl"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "rls_counter_implementation"
        for sample in family.samples
    }
    # The test environment compiles the walker (make venv / make walker), so auto chooses it.
    assert gauges == {"native": 1.0}
    assert rls.process is not None
    started = [line for line in rls.process.log_path.read_text().splitlines() if "rls started" in line]
    assert started and "native" in started[-1], started
