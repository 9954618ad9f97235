"""The reliability suite covers every declared pipeline: one scenario each, no more, no fewer."""

from __future__ import annotations

import pytest

from declarations import pipelines
from tests.reliability.scenarios import SCENARIOS

pytestmark = pytest.mark.reliability


def test_every_declared_pipeline_has_exactly_one_scenario() -> None:
    names = [s.name for s in SCENARIOS]
    assert sorted(names) == pipelines(), (
        f"scenarios {sorted(names)} != declared pipelines {pipelines()}: add a Scenario for each "
        "declarations/<name>.yaml to SCENARIOS in tests/reliability/scenarios.py"
    )
