"""The HA tracker and the exemplar rule in the Lua script, on real Redis and a real 6-node
Cluster: the same tables as the model, decision by decision, in one atomic call."""

from __future__ import annotations

import pytest
from mimir_edge.core.schema import ha_key
from mimir_edge.store.client import Redis, RedisConfig

from tests.bucket_backends import RedisBackend
from tests.ha_scenarios import HA_SCENARIOS, R1, HaModel, HaOnRedis, HaScenario, run_ha_scenario


@pytest.mark.parametrize("scenario", HA_SCENARIOS, ids=lambda s: s.name)
async def test_scenario_on_redis_matches_model(redis: Redis, redis_config: RedisConfig, scenario: HaScenario) -> None:
    backend = RedisBackend(redis, redis_config)
    try:
        on_redis = await run_ha_scenario(HaOnRedis(backend, scenario.limits), scenario)
    finally:
        await backend.close()
    on_model = await run_ha_scenario(HaModel(scenario.limits), scenario)
    assert on_redis == on_model


async def test_one_round_trip_per_decision_with_ha(redis: Redis, redis_config: RedisConfig) -> None:
    scenario = HA_SCENARIOS[0]
    backend = RedisBackend(redis, redis_config)
    try:
        on_redis = HaOnRedis(backend, scenario.limits)
        await backend.set_limits(on_redis.tenant, scenario.limits)
        before = backend.store.round_trips
        await run_ha_scenario(on_redis, scenario)
        assert backend.store.round_trips - before == len(scenario.steps)
        # The tracker lives in the tenant's slot, beside its bucket, and expires when idle.
        assert await redis.hlen(ha_key(on_redis.tenant)) == 1
        assert 0 < await redis.pttl(ha_key(on_redis.tenant)) <= 30 * 60 * 1000
        assert R1[2] == ("cluster", "ha-1")
    finally:
        await backend.close()
