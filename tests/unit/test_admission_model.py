"""The write decision's model (request rate → HA dedupe → ingestion rate, exemplars where kept),
step by step against a frozen clock."""

from __future__ import annotations

import pytest

from tests.ha_scenarios import HA_SCENARIOS, HaModel, HaScenario, run_ha_scenario


@pytest.mark.parametrize("scenario", HA_SCENARIOS, ids=lambda s: s.name)
async def test_scenario_on_model(scenario: HaScenario) -> None:
    await run_ha_scenario(HaModel(scenario.limits), scenario)
