"""The scenario tables against the pure-Python model of the token bucket."""

from __future__ import annotations

import pytest

from tests.bucket_backends import ModelBackend, run_scenario
from tests.scenarios import SCENARIOS, Scenario


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_scenario_on_model(scenario: Scenario) -> None:
    decisions = await run_scenario(ModelBackend(), scenario)
    assert decisions, "a scenario must make at least one call"
