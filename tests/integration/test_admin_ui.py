"""The Admin UI in real headless Chromium (Debian's, driven by Playwright) against two real RLS
replicas on real Redis with traffic through real Envoy: every page renders the numbers the test
produced, an emergency override set from the UI reaches both replicas, screenshots are saved,
and the browser logs no console error."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.rpc import code_pb2
from mimir_edge.core.limits import TenantLimits

from tests.admin_fleet import TOKEN, Fleet, api
from tests.integration.test_admin_api import check
from tests.integration.test_otlp_charging import PROTOBUF, REQUESTS, post
from tests.otlp_requests import mimir_charge
from tests.waiting import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("ui-fleet"))
    try:
        yield f.start()
    finally:
        f.stop()


@pytest.fixture(scope="module")
def tenants(fleet: Fleet) -> dict[str, str]:
    limited, free = f"limited-{uuid.uuid4().hex[:6]}", f"free-{uuid.uuid4().hex[:6]}"
    fleet.set_limits(limited, TenantLimits(ingestion_rate=1, ingestion_burst_size=100))
    fleet.set_limits(free, TenantLimits(ingestion_rate=50_000, ingestion_burst_size=500_000))
    fleet.push(limited, 50, 15)
    fleet.push(free, 50, 9)
    total = sum(fleet.sent.requests.values())
    wait_for(
        lambda: api(fleet.replicas[0].admin_url, "/api/overview")[1]["totals"]["requests"]["total"] == total,
        what="statistics flushed to Redis",
    )
    return {"limited": limited, "free": free}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the tests never download a browser)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "admin-ui"
    path.mkdir(exist_ok=True)
    return path


class Page:
    """One browser tab on the Admin UI; collects console errors and uncaught exceptions."""

    def __init__(self, context: object, base: str):
        self.page = context.new_page()  # type: ignore[attr-defined]
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, route: str, page_name: str) -> None:
        self.page.goto(f"{self.base}/#{route}")
        self.page.wait_for_function(f"document.body.dataset.page === {page_name!r}", timeout=10_000)

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).first.text_content(timeout=10_000)).strip()

    def wait_text(self, selector: str, expected: str, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            locator = self.page.locator(selector)
            current = locator.first.text_content().strip() if locator.count() else None  # type: ignore[union-attr]
            if current == expected:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{selector}: expected {expected!r}, found {current!r}")
            self.page.wait_for_timeout(200)

    def shot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, f"{path} looks empty"


def test_pages_render_the_traffic_the_test_sent(
    fleet: Fleet, tenants: dict[str, str], browser: object, shots: Path
) -> None:
    sent = fleet.sent
    limited, free = tenants["limited"], tenants["free"]
    ui = Page(browser, fleet.replicas[1].admin_url)

    ui.open("/overview", "overview")
    ui.wait_text('[data-testid="fleet-requests-total"]', str(sum(sent.requests.values())))
    ui.wait_text('[data-testid="fleet-denied-total"]', str(sum(sent.denied.values())))
    for chart in ("chart-requests", "chart-items"):
        assert ui.page.locator(f'svg[data-testid="{chart}"] :is(path, polyline)').count() > 0
    assert ui.page.locator(f'table[data-testid="top-tenants"] tr[data-tenant="{limited}"]').count() == 1
    ui.shot(shots / "overview.png")

    ui.open("/tenants", "tenants")
    row = f'table[data-testid="tenants-table"] tr[data-tenant="{limited}"]'
    ui.page.wait_for_selector(row)
    ui.wait_text(f'{row} td[data-col="denied_requests"]', str(sent.denied[limited]))
    assert ui.text(f'{row} td[data-col="ingestion_rate"]') == "1/s"
    assert (
        ui.text(f'table[data-testid="tenants-table"] tr[data-tenant="{free}"] td[data-col="ingestion_rate"]') == "50k/s"
    )
    ui.page.fill('input[data-testid="tenant-search"]', free[-6:])
    ui.page.wait_for_function(
        f"document.querySelectorAll('table[data-testid=\"tenants-table\"] tr[data-tenant]').length === 1"
        f" && !!document.querySelector('tr[data-tenant=\"{free}\"]')",
        timeout=10_000,
    )
    ui.page.fill('input[data-testid="tenant-search"]', "")
    ui.page.wait_for_selector(row)
    ui.page.click('th[data-sort="denied_requests"]')
    ui.page.wait_for_timeout(300)
    ui.shot(shots / "tenants.png")

    ui.open(f"/tenants/{limited}", "tenant")
    assert ui.text('[data-testid="tenant-id"]') == limited
    ui.wait_text('[data-testid="tenant-requests-total"]', str(sent.requests[limited]))
    ui.wait_text('[data-testid="tenant-denied-total"]', str(sent.denied[limited]))
    assert ui.text('[data-testid="limit-ingestion_rate"]') == "1"
    assert ui.page.locator('svg[data-testid="chart-tenant-usage"] [data-testid="limit-line"]').count() == 1
    ui.shot(shots / "tenant-detail.png")

    ui.open("/denials", "denials")
    denial = f'table[data-testid="denials-table"] tr[data-tenant="{limited}"][data-reason="ingestion_rate"]'
    ui.page.wait_for_selector(denial, timeout=10_000)
    assert ui.page.locator(f'table[data-testid="denials-table"] tr[data-tenant="{free}"]').count() == 0
    ui.shot(shots / "denials.png")

    ui.open("/system", "system")
    for rls in fleet.replicas:
        replica_id = api(rls.admin_url, "/api/ready")[1]["replica_id"]
        ui.page.wait_for_selector(f'table[data-testid="replicas-table"] tr[data-replica="{replica_id}"]')
    assert "standalone" in ui.text('[data-testid="redis-status"]')
    ui.shot(shots / "system.png")
    assert ui.errors == [], f"console errors: {ui.errors}"


def test_emergency_override_from_the_ui_reaches_both_replicas(
    fleet: Fleet, tenants: dict[str, str], browser: object, shots: Path
) -> None:
    free = tenants["free"]
    a, b = fleet.replicas
    assert check(a.grpc_addr, free) == code_pb2.OK
    ui = Page(browser, a.admin_url)
    ui.open(f"/tenants/{free}", "tenant")
    assert "none" in ui.text('[data-testid="tenant-override"]').lower()

    form = 'form[data-testid="override-form"]'
    ui.page.fill(f'{form} [name="ttl_seconds"]', "5")
    ui.page.fill(f'{form} [name="reason"]', "UI test: runaway exporter")
    ui.page.fill(f'{form} [name="ingestion_rate"]', "1")
    ui.page.fill(f'{form} [name="ingestion_burst_size"]', "10")
    ui.page.click('[data-testid="override-submit"]')  # no token: refused, said in the form
    ui.page.wait_for_function(
        "document.querySelector('[data-testid=\"override-result\"]').textContent.toLowerCase().includes('token')",
        timeout=10_000,
    )
    assert check(b.grpc_addr, free) == code_pb2.OK

    ui.page.fill(f'{form} [name="token"]', TOKEN)
    ui.page.click('[data-testid="override-submit"]')
    ui.page.wait_for_function(
        "document.querySelector('[data-testid=\"tenant-override\"]').textContent.includes('runaway exporter')",
        timeout=10_000,
    )
    # Checked at once, not waited for: in force on both replicas when the UI shows it.
    assert [check(r.grpc_addr, free) for r in (a, b)] == [code_pb2.RESOURCE_EXHAUSTED] * 2
    ui.shot(shots / "tenant-override.png")

    # It expires by itself: the UI says so on its next refresh, and both replicas admit again.
    wait_for(lambda: api(b.admin_url, f"/api/tenants/{free}/override")[0] == 404, timeout_s=30, what="TTL expiry")
    ui.page.wait_for_function(
        "document.querySelector('[data-testid=\"tenant-override\"]').textContent.toLowerCase().includes('none')",
        timeout=15_000,
    )
    assert [check(r.grpc_addr, free) for r in (a, b)] == [code_pb2.OK] * 2
    # The refused attempt is expected to show up as a failed fetch (401) in the console.
    unexpected = [e for e in ui.errors if "401" not in e]
    assert unexpected == [], f"console errors: {unexpected}"


def test_ui_works_offline_with_no_external_resources(fleet: Fleet, browser: object) -> None:
    ui = Page(browser, fleet.replicas[0].admin_url)
    requested: list[str] = []
    ui.page.on("request", lambda r: requested.append(r.url))
    ui.open("/overview", "overview")
    ui.page.wait_for_timeout(500)
    outside = [u for u in requested if not u.startswith(fleet.replicas[0].admin_url) and not u.startswith("data:")]
    assert any(u.endswith("/api/overview") or "/api/overview?" in u for u in requested)
    assert outside == [], f"the UI fetched from outside: {outside}"


def test_tenant_page_shows_what_a_write_is_charged_and_the_ha_clusters(
    fleet: Fleet, browser: object, shots: Path
) -> None:
    tenant = f"ha-{uuid.uuid4().hex[:6]}"
    fleet.set_limits(tenant, TenantLimits(accept_ha_samples=True, ha_max_clusters=5, ingestion_rate=50_000))
    fleet.push(tenant, 20, 3, external_labels=(("__replica__", "replica-1"), ("cluster", "ha-1")))
    fleet.push(tenant, 20, 2, external_labels=(("__replica__", "replica-2"), ("cluster", "ha-1")))

    def flushed() -> dict[str, Any] | None:
        detail = api(fleet.replicas[1].admin_url, f"/api/tenants/{tenant}")[1]
        return detail if detail["totals"]["requests"]["total"] == 5 else None

    detail = wait_for(flushed, what="the tenant's statistics flushed to Redis")
    assert detail["totals"]["requests"]["non_elected"] == 2 and detail["totals"]["items"]["non_elected"] == 40
    assert detail["totals"]["requests"]["allowed"] == 3 and detail["totals"]["items"]["allowed"] == 60
    assert detail["limit_sources"]["accept_ha_samples"] == "overrides"
    assert detail["limit_sources"]["max_global_exemplars_per_user"] == "defaults"
    (cluster,) = detail["ha_clusters"]
    assert (cluster["cluster"], cluster["elected_replica"], cluster["failovers"]) == ("ha-1", "replica-1", 0)

    ui = Page(browser, fleet.replicas[0].admin_url)
    ui.open(f"/tenants/{tenant}", "tenant")
    ui.wait_text('[data-testid="ha-elected-ha-1"]', "replica-1")
    assert ui.text('[data-testid="ha-failovers-ha-1"]') == "0"
    assert ui.text('[data-testid="charging-accept_ha_samples"]') == "true"
    assert ui.text('[data-testid="charging-ha_max_clusters"]') == "5"
    assert ui.text('[data-testid="charging-max_global_exemplars_per_user"]') == "0"
    assert ui.text('[data-testid="charging-otel_native_delta_ingestion"]') == "false"
    ui.shot(shots / "tenant-ha.png")
    assert ui.errors == [], f"console errors: {ui.errors}"


def test_tenant_page_shows_requests_and_items_by_protocol(fleet: Fleet, browser: object, shots: Path) -> None:
    """remote_write through Envoy, OTLP straight to a replica's HTTP Check (as Envoy sends it):
    the tenant page splits what the RLS recorded by protocol."""
    tenant = f"proto-{uuid.uuid4().hex[:6]}"
    req = REQUESTS["identifying-only-resource"]
    n = mimir_charge(req)
    # Room for 3 remote_write requests of 20 and 2 OTLP writes; the third OTLP write is denied.
    fleet.set_limits(tenant, TenantLimits(ingestion_rate=0.0001, ingestion_burst_size=60 + 2 * n))
    fleet.push(tenant, 20, 3)
    otlp = [
        post(fleet.replicas[i % 2], tenant, req.SerializeToString(), {"content-type": PROTOBUF})[0] for i in range(3)
    ]
    assert otlp == [200, 200, 429]

    def flushed() -> dict[str, Any] | None:
        detail = api(fleet.replicas[1].admin_url, f"/api/tenants/{tenant}")[1]
        return detail if detail["totals"]["requests"]["total"] == 6 else None

    wait_for(flushed, what="the tenant's statistics flushed to Redis")
    ui = Page(browser, fleet.replicas[0].admin_url)
    ui.open(f"/tenants/{tenant}", "tenant")
    ui.wait_text('[data-testid="protocol-otlp-requests"]', "3")
    expected = {
        "protocol-otlp-requests-denied": "1",
        "protocol-otlp-items": str(3 * n),
        "protocol-otlp-items-denied": str(n),
        "protocol-remote_write-requests": "3",
        "protocol-remote_write-requests-denied": "0",
        "protocol-remote_write-items": "60",
        "protocol-remote_write-items-denied": "0",
    }
    assert {testid: ui.text(f'[data-testid="{testid}"]') for testid in expected} == expected
    ui.shot(shots / "tenant-protocols.png")
    assert ui.errors == [], f"console errors: {ui.errors}"
