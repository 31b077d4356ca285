"""docs/architecture.md is written by hand; these checks keep its contract tables in step with
the code: every Redis key shape, every header the RLS sets, every listen address and its default."""

from __future__ import annotations

from pathlib import Path

import pytest
from mimir_edge import contract
from mimir_edge.admin.overrides import AUDIT_KEY, OVERRIDES_KEY
from mimir_edge.admin.stats import COARSE, DENIALS_INDEX_KEY, DENIALS_KEY, FINE, fleet_key, tenants_key
from mimir_edge.config_reference import env_flags, rls_parser, sync_parser
from mimir_edge.core import schema

DOC = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()

REDIS_KEYS = [
    schema.limits_key("tenant"),
    schema.bucket_key("tenant"),
    schema.override_key("tenant"),
    schema.ha_key("tenant"),
    schema.replica_key("<id>"),
    schema.DEFAULTS_KEY,
    schema.TENANTS_KEY,
    schema.SYNC_STATUS_KEY,
    schema.REPLICAS_KEY,
    schema.LIMITS_CHANNEL,
    DENIALS_KEY,
    DENIALS_INDEX_KEY,
    OVERRIDES_KEY,
    AUDIT_KEY,
    fleet_key(FINE, 0).replace(f":{FINE.name}:", ":<res>:").removesuffix(":0") + ":<start>",
    tenants_key(COARSE, 0).replace(f":{COARSE.name}:", ":<res>:").removesuffix(":0") + ":<start>",
]


@pytest.mark.parametrize("key", REDIS_KEYS)
def test_every_redis_key_is_in_the_schema_table(key: str) -> None:
    table = DOC.split("\n## Redis schema\n", 1)[1].split("\n## ", 1)[0]
    assert f"`{key}`" in table


def test_heartbeat_timings_are_the_code_s() -> None:
    assert f"every `HEARTBEAT_S` ({schema.HEARTBEAT_S:g} s), live for `LIVE_FOR_S` ({schema.LIVE_FOR_S:g} s)" in DOC


@pytest.mark.parametrize(
    "name",
    [
        contract.DECISION_HEADER,
        contract.ITEMS_HEADER,
        contract.SERIES_HEADER,
        contract.REASON_HEADER,
        contract.CHECK_PREFIX,
        contract.HEALTH_PATH,
        contract.CHARGE_EXTENSION,
        contract.RATELIMIT_DOMAIN,
        contract.METADATA_NAMESPACE,
    ],
)
def test_every_wire_name_is_documented(name: str) -> None:
    assert name in DOC


#: (env var, default) of every listen address the programs take.
ADDRESSES = [
    (action.env_var, action.default)
    for action in env_flags(rls_parser()) + env_flags(sync_parser())
    if action.env_var.endswith("_ADDR")
]


def test_the_address_list_is_not_empty() -> None:
    # one of each program: the parametrized check below runs on real rows
    assert {"GRPC_ADDR", "HTTP_ADDR"} <= {name for name, _ in ADDRESSES}


@pytest.mark.parametrize(("env_var", "default"), ADDRESSES)
def test_every_listen_address_and_its_default_is_in_the_ports_table(env_var: str, default: str) -> None:
    assert f"`{default}` (`{env_var}`" in DOC
