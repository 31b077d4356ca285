"""`mimir-edge render-envoy`: which ext_authz transport it renders when none is asked, and one
failure mode for every filter that can fail open."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.rpc import status_pb2
from mimir_edge.cli import main
from mimir_edge.deploy.envoy import OTLP_RATE_LIMITED_MESSAGE, EnvoyOptions, render

RLS = (("127.0.0.1", 8083),)
UPSTREAM = ("127.0.0.1", 8080)


def filters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return {f["name"]: f["typed_config"] for f in hcm["http_filters"]}


def test_the_check_goes_over_http_by_default() -> None:
    options = EnvoyOptions(rls=RLS, upstream=UPSTREAM)
    assert options.authz_transport == "http"
    ext_authz = filters(render(options))["envoy.filters.http.ext_authz"]
    assert "http_service" in ext_authz and "grpc_service" not in ext_authz


def test_ratelimit_charging_defaults_to_grpc() -> None:
    options = EnvoyOptions(rls=RLS, upstream=UPSTREAM, charge="ratelimit")
    assert options.authz_transport == "grpc"
    rendered = filters(render(options))
    assert "grpc_service" in rendered["envoy.filters.http.ext_authz"]
    assert rendered["envoy.filters.http.ratelimit"]["rate_limit_service"]["grpc_service"]


def test_ratelimit_charging_over_http_asked_explicitly_is_an_error() -> None:
    with pytest.raises(ValueError, match="charge=ratelimit needs authz_transport=grpc"):
        EnvoyOptions(rls=RLS, upstream=UPSTREAM, charge="ratelimit", authz_transport="http")


def test_the_http_check_sees_every_header_otlp_counting_needs() -> None:
    ext_authz = filters(render(EnvoyOptions(rls=RLS, upstream=UPSTREAM)))["envoy.filters.http.ext_authz"]
    allowed = {p["exact"] for p in ext_authz["allowed_headers"]["patterns"]}
    assert {"x-scope-orgid", "content-type", "content-encoding"} <= allowed


@pytest.mark.parametrize(("charge", "transport"), [("check", "http"), ("check", "grpc"), ("ratelimit", "grpc")])
@pytest.mark.parametrize("allow", [True, False])
def test_every_filter_that_can_fail_follows_the_one_failure_mode(charge: str, transport: str, allow: bool) -> None:
    options = EnvoyOptions(RLS, UPSTREAM, charge=charge, authz_transport=transport, failure_mode_allow=allow)
    rendered = filters(render(options))
    assert rendered["envoy.filters.http.ext_authz"]["failure_mode_allow"] is allow
    if charge == "ratelimit":
        assert rendered["envoy.filters.http.ratelimit"]["failure_mode_deny"] is not allow


@pytest.mark.parametrize(
    ("args", "transport"),
    [([], "http"), (["--charge", "ratelimit"], "grpc"), (["--authz-transport", "grpc"], "grpc")],
)
def test_render_envoy_cli_defaults(tmp_path: Path, args: list[str], transport: str) -> None:
    out = tmp_path / "envoy.yaml"
    assert main(["render-envoy", "--rls", "rls:8083", "--upstream", "distributor:8080", *args, "-o", str(out)]) == 0
    text = out.read_text()
    assert text.splitlines()[0].endswith(f"ext_authz over {transport}.")
    ext_authz = filters(yaml.safe_load(text))["envoy.filters.http.ext_authz"]
    assert ("http_service" in ext_authz) is (transport == "http")


def test_render_envoy_cli_refuses_ratelimit_over_http(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--rls", "rls:8083", "--upstream", "d:8080", "--charge", "ratelimit", "--authz-transport", "http"]
    code = main(["render-envoy", *args])
    assert code == 2
    assert "charge=ratelimit needs authz_transport=grpc" in capsys.readouterr().err


def test_ratelimit_charging_answers_otlp_writes_with_a_status_in_their_format() -> None:
    """The rate limit filter's own 429 has no body: for OTLP the local reply mappers supply one."""
    hcm = render(EnvoyOptions(rls=RLS, upstream=UPSTREAM, charge="ratelimit"))["static_resources"]["listeners"][0][
        "filter_chains"
    ][0]["filters"][0]["typed_config"]
    as_json, as_protobuf = hcm["local_reply_config"]["mappers"]
    assert as_json["body_format_override"]["content_type"] == "application/json"
    assert json.loads(as_json["body"]["inline_string"]) == {"code": 8, "message": OTLP_RATE_LIMITED_MESSAGE}
    assert as_protobuf["body_format_override"]["content_type"] == "application/x-protobuf"
    status = status_pb2.Status.FromString(base64.b64decode(as_protobuf["body"]["inline_bytes"]))
    assert (status.code, status.message) == (8, OTLP_RATE_LIMITED_MESSAGE)
    assert "err-mimir-tenant-max-ingestion-rate" in status.message
    # Only with charge=ratelimit: the Check's own 429 already has its body.
    check = render(EnvoyOptions(rls=RLS, upstream=UPSTREAM))["static_resources"]["listeners"][0]["filter_chains"][0]
    assert "local_reply_config" not in check["filters"][0]["typed_config"]
