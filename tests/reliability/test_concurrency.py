"""Two runs of one pipeline at once, as two real processes on one pipeline folder.

The second fails fast with the clear "already running" message, reads nothing and changes nothing;
the first finishes and leaves exactly the expected data and a consistent state. The lock lives in the
shared runner (``utils.runner.pipeline_lock``), so this holds for every pipeline; across machines the
Prefect concurrency slot adds the same (``tests/flows/test_operations.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.warehouse import Warehouse
from tests.reliability.scenarios import (
    CURRENCIES_SCENARIO,
    PausedRun,
    completed_loads,
    stored_state,
)

pytestmark = pytest.mark.reliability


def test_a_second_process_fails_fast_and_the_first_finishes_intact(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, tmp_path: Path
) -> None:
    scenario = CURRENCIES_SCENARIO
    scenario.run()
    first = PausedRun(scenario, tmp_path)
    first.wait_until_loading()  # holds the lock, mid-load
    requests = len(frankfurter.requests)

    second = PausedRun(scenario, tmp_path, pause=False)
    code, out, err = second.finish(timeout=60)
    assert code == 1
    assert "pipeline currencies is already running (pid" in err and "changed nothing" in err, err
    assert len(frankfurter.requests) == requests, "the second run read nothing"
    # The first run holds the DuckDB file for its whole load step (utils.destinations.held_open), so
    # the warehouse is checked once it has finished: one more completed load, exactly the source's rows.

    first.release()
    code, out, err = first.finish()
    assert code == 0, err
    assert "## currencies: succeeded" in out
    scenario.expect(warehouse, frankfurter)
    pipeline = scenario.module.create_pipeline()
    assert pipeline.has_pending_data is False
    assert len(completed_loads(warehouse, "currencies")) == 2, "the first run's load, once"
    local = {k: v for k, v in pipeline.state.items() if k != "_local"}
    assert stored_state("currencies") == local, "local and stored state agree"
