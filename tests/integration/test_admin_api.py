"""The admin API against two real RLS replicas on one real Redis, traffic through real Envoy:
the same fleet-wide truth from either replica, equal to what the test sent; emergency overrides
with bearer tokens, applied by every replica at once and expiring by themselves."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import code_pb2
from mimir_edge.core.limits import TenantLimits
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

from tests.admin_fleet import TOKEN, TOKEN_NAME, Fleet, api
from tests.integration.test_envoy_rls import metric_samples
from tests.waiting import wait_for

SERIES = 50


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("admin-fleet"))
    try:
        yield f.start()
    finally:
        f.stop()


@pytest.fixture(scope="module")
def traffic(fleet: Fleet) -> dict[str, str]:
    """A limited tenant (1 sample/s, burst 100: two requests pass, then denials) and a free one."""
    limited, free = name("limited"), name("free")
    fleet.set_limits(limited, TenantLimits(ingestion_rate=1, ingestion_burst_size=100))
    fleet.set_limits(free, TenantLimits(ingestion_rate=100_000, ingestion_burst_size=1_000_000))
    fleet.push(limited, SERIES, 20)
    fleet.push(free, SERIES, 12)
    return {"limited": limited, "free": free}


def check(address: str, tenant: str) -> int:
    """One ext_authz Check straight to a replica (as Envoy sends it); the gRPC status code."""
    request = authz.CheckRequest()
    request.attributes.request.http.headers.update({**RW1_HEADERS, "x-scope-orgid": tenant})
    request.attributes.request.http.raw_body = compress(rw1_request(Shape(series=SERIES)))
    with grpc.insecure_channel(address) as channel:
        return int(authz_grpc.AuthorizationStub(channel).Check(request, timeout=5).status.code)


def test_both_replicas_show_the_same_fleet_totals_equal_to_what_was_sent(fleet: Fleet, traffic: dict[str, str]) -> None:
    sent = fleet.sent
    total = sum(sent.requests.values())
    assert sent.denied[traffic["limited"]] > 0 and sent.allowed[traffic["limited"]] > 0
    assert sent.denied[traffic["free"]] == 0

    # Envoy spread the calls over both replicas: each one decided some of them itself.
    for rls in fleet.replicas:
        decided = sum(v for (n, _), v in metric_samples(rls.metrics_url).items() if n == "rls_decisions_total")
        assert decided > 0, f"replica {rls.admin_url} decided nothing"

    def overviews() -> list[dict[str, object]] | None:
        answers = [api(r.admin_url, "/api/overview?window=600")[1] for r in fleet.replicas]
        done = all(a["totals"]["requests"]["total"] == total for a in answers)
        return answers if done else None

    first, second = wait_for(overviews, timeout_s=30, what="both replicas' overview to count every request")
    print(f"\nsent={dict(sent.requests)} allowed={dict(sent.allowed)} denied={dict(sent.denied)}")
    assert first["totals"] == second["totals"]
    assert first["served_by"] != second["served_by"]
    requests = first["totals"]["requests"]
    assert requests["allowed"] == sum(sent.allowed.values())
    assert requests["denied"] == sum(sent.denied.values())
    assert first["totals"]["items"]["allowed"] == sum(sent.allowed_items.values())
    assert first["totals"]["items"]["denied"] == sum(sent.denied_items.values())
    assert first["totals"]["not_allowed_by_reason"] == {"ingestion_rate": sum(sent.denied.values())}
    assert sorted(r["id"] for r in first["replicas"]) == sorted(r["id"] for r in second["replicas"])
    assert len(first["replicas"]) == 2
    assert first["redis"]["ok"] is True
    top = {t["tenant"]: t for t in first["top_tenants"]}
    assert top[traffic["limited"]]["denied_requests"] == sent.denied[traffic["limited"]]

    for tenant in traffic.values():
        one, two = (api(r.admin_url, f"/api/tenants/{tenant}?window=600")[1] for r in fleet.replicas)
        assert one["totals"] == two["totals"]
        assert one["totals"]["requests"]["allowed"] == sent.allowed[tenant]
        assert one["totals"]["requests"]["denied"] == sent.denied[tenant]
        assert one["totals"]["items"]["allowed"] == sent.allowed_items[tenant]
        assert one["totals"]["items"]["denied"] == sent.denied_items[tenant]
        assert sum(p["requests"]["allowed"] + p["requests"]["denied"] for p in one["series"]) == sent.requests[tenant]

    limited = api(fleet.replicas[0].admin_url, f"/api/tenants/{traffic['limited']}")[1]
    assert limited["limits"]["ingestion_rate"] == 1.0
    assert limited["limits"]["ingestion_burst"] == 100
    assert limited["limit_sources"]["ingestion_rate"] == "overrides"
    assert limited["source"] == "overrides"


def test_tenant_table_sorts_searches_and_pages(fleet: Fleet, traffic: dict[str, str]) -> None:
    base = fleet.replicas[1].admin_url
    wait_for(
        lambda: (
            api(base, f"/api/tenants/{traffic['limited']}?window=600")[1]["totals"]["requests"]["total"]
            == fleet.sent.requests[traffic["limited"]]
        ),
        what="stats flushed",
    )
    status, page = api(base, "/api/tenants?sort=denied_requests&order=desc&per_page=1&window=600")
    assert status == 200
    assert page["tenants"][0]["tenant"] == traffic["limited"]
    assert page["tenants"][0]["window"]["denied_requests"] == fleet.sent.denied[traffic["limited"]]
    assert page["tenants"][0]["limits"]["ingestion_rate"] == 1.0 and page["tenants"][0]["source"] == "overrides"
    assert page["total"] >= 2 and page["per_page"] == 1
    second = api(base, "/api/tenants?sort=denied_requests&order=desc&per_page=1&page=2&window=600")[1]
    assert second["tenants"][0]["tenant"] != traffic["limited"]
    found = api(base, f"/api/tenants?q={traffic['free'][-6:]}")[1]
    assert [t["tenant"] for t in found["tenants"]] == [traffic["free"]]
    by_name = api(base, "/api/tenants?sort=tenant&order=asc&per_page=500")[1]["tenants"]
    assert [t["tenant"] for t in by_name] == sorted(t["tenant"] for t in by_name)


def test_denials_list_names_tenant_reason_and_limit(fleet: Fleet, traffic: dict[str, str]) -> None:
    def denials() -> list[dict[str, object]]:
        listed = api(fleet.replicas[0].admin_url, "/api/denials?window=600")[1]["denials"]
        return [d for d in listed if d["tenant"] == traffic["limited"]]

    (entry,) = wait_for(denials, what="the limited tenant in /api/denials")
    assert entry["reason"] == "ingestion_rate"
    assert entry["decision"] == "denied"
    assert entry["limits"]["ingestion_rate"] == 1.0
    assert entry["since_ms"] <= entry["last_ms"]
    wait_for(
        lambda: denials()[0]["requests_in_window"] == fleet.sent.denied[traffic["limited"]],
        what="denials counted in the window",
    )


def test_emergency_override_needs_a_token_applies_everywhere_and_expires(fleet: Fleet) -> None:
    tenant = name("victim")
    a, b = fleet.replicas
    assert check(a.grpc_addr, tenant) == code_pb2.OK

    body = {"ttl_seconds": 4, "reason": "incident 42: cardinality explosion", "ingestion_rate": 1}
    assert api(a.admin_url, f"/api/tenants/{tenant}/override", method="PUT", body=body)[0] == 401
    assert api(a.admin_url, f"/api/tenants/{tenant}/override", method="PUT", body=body, token="wrong")[0] == 401
    status, error = api(a.admin_url, f"/api/tenants/{tenant}/override", method="PUT", body={"reason": "x"}, token=TOKEN)
    assert status == 400 and "ttl_seconds" in error["error"]
    assert check(b.grpc_addr, tenant) == code_pb2.OK, "a refused PUT must change nothing"

    put_sent = time.monotonic()  # before the PUT: the TTL cannot start earlier than this
    status, stored = api(a.admin_url, f"/api/tenants/{tenant}/override", method="PUT", body=body, token=TOKEN)
    set_at = time.monotonic()
    assert status == 200, stored
    assert stored["by"] == TOKEN_NAME and stored["mode"] == "enforce"
    # Default burst/rate ratio is 20 s, so a 1/s override gets burst 20 < 50 samples: never fits.
    assert stored["limits"] == {"ingestion_rate": 1.0, "ingestion_burst": 20}
    # Checked at once, not waited for: the override is in force on both replicas when the PUT answers.
    codes = [check(r.grpc_addr, tenant) for r in (a, b)]
    print(f"\noverride applied on both replicas, checked {(time.monotonic() - set_at) * 1000:.0f} ms after the PUT")
    assert codes == [code_pb2.RESOURCE_EXHAUSTED] * 2

    detail = api(b.admin_url, f"/api/tenants/{tenant}")[1]
    assert detail["override"]["reason"] == body["reason"]
    assert detail["limit_sources"]["ingestion_rate"] == "emergency_override"
    assert detail["limits"]["ingestion_rate"] == 1.0
    listed = api(b.admin_url, "/api/overrides")[1]
    assert [o["tenant"] for o in listed["overrides"]] == [tenant]
    assert listed["audit"][0]["tenant"] == tenant and listed["audit"][0]["by"] == TOKEN_NAME
    audit_lines = [
        json.loads(line)
        for line in a.process.log_path.read_text().splitlines()  # type: ignore[union-attr]
        if '"emergency override set"' in line
    ]
    assert audit_lines and audit_lines[-1]["tenant"] == tenant and audit_lines[-1]["reason"] == body["reason"]

    wait_for(lambda: api(a.admin_url, f"/api/tenants/{tenant}/override")[0] == 404, timeout_s=30, what="TTL expiry")
    assert time.monotonic() - put_sent >= 3.99  # not before its 4 s TTL (10 ms: Redis's clock granularity)
    assert [check(r.grpc_addr, tenant) for r in (a, b)] == [code_pb2.OK] * 2
    assert api(b.admin_url, "/api/overrides")[1]["overrides"] == []


def test_override_delete_and_shadow_mode(fleet: Fleet) -> None:
    a, b = fleet.replicas
    tenant = name("cut")
    body = {"ttl_seconds": 300, "reason": "cut", "ingestion_rate": 1, "ingestion_burst_size": 1}
    assert api(a.admin_url, f"/api/tenants/{tenant}/override", method="PUT", body=body, token=TOKEN)[0] == 200
    assert check(b.grpc_addr, tenant) == code_pb2.RESOURCE_EXHAUSTED
    assert api(b.admin_url, f"/api/tenants/{tenant}/override", method="DELETE")[0] == 401
    assert api(b.admin_url, f"/api/tenants/{tenant}/override", method="DELETE", token=TOKEN)[0] == 200
    assert check(a.grpc_addr, tenant) == code_pb2.OK
    assert api(b.admin_url, f"/api/tenants/{tenant}/override", method="DELETE", token=TOKEN)[0] == 404

    # Shadow for one tenant: its limits still decide, but nothing is denied, and it is counted.
    shadowed = name("shadowed")
    fleet.set_limits(shadowed, TenantLimits(ingestion_rate=1, ingestion_burst_size=10))
    assert check(a.grpc_addr, shadowed) == code_pb2.RESOURCE_EXHAUSTED
    shadow = {"ttl_seconds": 300, "reason": "false positives", "mode": "shadow"}
    assert api(a.admin_url, f"/api/tenants/{shadowed}/override", method="PUT", body=shadow, token=TOKEN)[0] == 200
    assert [check(r.grpc_addr, shadowed) for r in (a, b)] == [code_pb2.OK] * 2
    wait_for(
        lambda: api(a.admin_url, f"/api/tenants/{shadowed}?window=600")[1]["totals"]["requests"]["shadow_denied"] == 2,
        what="shadow denials counted",
    )
    samples = metric_samples(a.metrics_url)
    assert samples[("rls_emergency_override_decisions_total", (("mode", "shadow"),))] >= 1
    assert api(a.admin_url, f"/api/tenants/{shadowed}/override", method="DELETE", token=TOKEN)[0] == 200


def test_read_only_without_token_and_clear_errors(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert fleet.redis is not None
    plain = RlsProcess(
        tmp_path_factory.mktemp("plain"),
        env={"REDIS_URL": fleet.redis.url.replace("redis://", "redis://:hunter2@"), "ADMIN_TOKEN": ""},
    )
    # A password Redis does not have: the replica must still start (and /api/config redact it).
    plain.wait_serving = False
    plain.start()
    try:
        status, error = api(
            plain.admin_url, "/api/tenants/x/override", method="PUT", body={"ttl_seconds": 5, "reason": "r"}
        )
        assert status == 403 and "read-only" in error["error"]
        config = api(plain.admin_url, "/api/config")[1]
        assert "hunter2" not in json.dumps(config) and config["admin_writable"] is False
    finally:
        plain.stop()

    base = fleet.replicas[0].admin_url
    assert api(base, "/api/overview?window=abc")[0] == 400
    assert api(base, "/api/tenants?sort=nope")[0] == 400
    assert api(base, "/api/tenants/bad%20tenant")[0] == 400
    assert api(base, "/api/nothing")[0] == 404
    assert api(base, "/api/tenants", method="POST", body={})[0] == 405
    config = api(base, "/api/config")[1]
    assert config["admin_writable"] is True and config["failure_mode"] == "allow"
    assert api(base, "/api/health") == (200, {"status": "ok"})
    assert api(base, "/api/ready")[1]["ready"] is True
