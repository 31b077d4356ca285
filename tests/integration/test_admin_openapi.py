"""The admin API keeps its OpenAPI contract: schemathesis (property-based, positive and negative
inputs, every check) against a running replica with real traffic in Redis."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mimir_edge.core.limits import TenantLimits

from tests.admin_fleet import TOKEN, Fleet, api

SPEC = Path(__file__).resolve().parents[2] / "services" / "mimir_edge" / "admin" / "openapi.yaml"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("openapi-fleet"))
    try:
        f.start(replicas=1)
        f.set_limits("limited", TenantLimits(ingestion_rate=1, ingestion_burst_size=100))
        f.push("limited", 50, 5)
        f.push("free", 50, 3)
        yield f
    finally:
        f.stop()


def test_served_document_is_the_file_in_the_repo(fleet: Fleet) -> None:
    status, served = api(fleet.replicas[0].admin_url, "/api/openapi.json")
    assert status == 200
    assert served == yaml.safe_load(SPEC.read_text())


def test_schemathesis_finds_no_contract_violation(fleet: Fleet, artifacts_dir: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is missing: pip install -e '.[dev]' (it provides `st`)"
    report = artifacts_dir / "schemathesis"
    shutil.rmtree(report, ignore_errors=True)
    result = subprocess.run(
        [
            st,
            "run",
            f"{fleet.replicas[0].admin_url}/api/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "50",
            "--seed",
            "42",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--report",
            "junit",
            "--report-dir",
            str(report),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
