"""Faults in every step of every write disposition, through the real pipelines and their look-alikes.

For each scenario (replace: currencies, append: exchange_rates, merge: hubspot) a first run loads, the
source changes, and the run under test fails in extract (the look-alike breaks part-way through),
normalise or load (``faults``), or is SIGKILLed mid-load in a real process. Then the retry, or the next
run, must leave exactly the source's data in the destination, and the state stored with the data must
never claim more than was loaded. The same guarantees on minimal inline resources are proven in
``tests/utils/test_runner.py``; through Prefect's task retries in ``tests/flows/test_operations.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fixtures.faults import Faults
from tests.fixtures.warehouse import Warehouse
from tests.reliability.scenarios import (
    PausedRun,
    Scenario,
    after_a_first_run,
    completed_loads,
    scenario_params,
    snapshot,
    stored_state,
)
from utils.runner import attempt

pytestmark = pytest.mark.reliability


@pytest.fixture
def source(request: pytest.FixtureRequest, scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> Any:
    return after_a_first_run(request, scenario, monkeypatch)


def assert_failed_run_changed_nothing(
    scenario: Scenario, warehouse: Warehouse, source: Any, before: dict[str, Any], loads: list[str]
) -> None:
    assert snapshot(warehouse, scenario.name) == before, "a failed run changed the destination"
    assert completed_loads(warehouse, scenario.name) == loads
    scenario.state_behind_data(stored_state(scenario.name), warehouse, source)


@pytest.mark.parametrize("scenario", scenario_params())
@pytest.mark.parametrize("step", ["extract", "normalize", "load"])
def test_a_failed_step_then_the_retry_leaves_exactly_the_source_data(
    scenario: Scenario, step: str, source: Any, warehouse: Warehouse, faults: Faults
) -> None:
    before, loads = snapshot(warehouse, scenario.name), completed_loads(warehouse, scenario.name)
    if step == "extract":
        scenario.break_extract(source)
    else:
        getattr(faults, f"fail_{step}")()

    with attempt("run-1"), pytest.raises(PipelineStepFailed) as exc:
        scenario.run(**scenario.second_run)
    assert exc.value.step == step
    assert_failed_run_changed_nothing(scenario, warehouse, source, before, loads)
    assert scenario.module.create_pipeline().has_pending_data is (step != "extract")

    source.reset()  # the outage is over
    with attempt("run-1"):  # the orchestrator's retry of the same run
        report = scenario.run(**scenario.second_run)
    if step != "extract":
        assert report.extracted is False and source.requests == [], (
            "the retry finished the pending package instead of reading the source again"
        )
    scenario.expect(warehouse, source)
    scenario.state_behind_data(stored_state(scenario.name), warehouse, source)
    assert scenario.module.create_pipeline().has_pending_data is False


@pytest.mark.parametrize("scenario", scenario_params())
def test_sigkill_mid_load_then_the_next_run_leaves_exactly_the_source_data(
    scenario: Scenario, source: Any, warehouse: Warehouse, tmp_path: Path
) -> None:
    before, loads = snapshot(warehouse, scenario.name), completed_loads(warehouse, scenario.name)
    run = PausedRun(scenario, tmp_path)
    table = run.wait_until_loading()
    assert run.kill() == -9, f"killed while loading {table}"
    # Each table loads atomically (staging, then one transaction); a package spanning several tables
    # does not: tables whose jobs finished before the kill may already hold the new rows, tagged with
    # a load id that is not in _dlt_loads (docs/reliability.md). The table being loaded is untouched,
    # no load completed, and the stored state is still the last completed load's.
    assert snapshot(warehouse, scenario.name).get(table) == before.get(table)
    assert completed_loads(warehouse, scenario.name) == loads
    scenario.state_behind_data(stored_state(scenario.name), warehouse, source)
    assert scenario.module.create_pipeline().has_pending_data, "the killed run's package is still there"

    report = scenario.run(**scenario.second_run)  # the next scheduled run, on the same worker
    assert report.resumed_load_ids, "the next run finished the killed run's package first"
    scenario.expect(warehouse, source)
    scenario.state_behind_data(stored_state(scenario.name), warehouse, source)


@pytest.mark.parametrize("scenario", scenario_params())
def test_sigkill_after_a_job_committed_then_the_next_run_loads_its_rows_once(
    scenario: Scenario, source: Any, warehouse: Warehouse, tmp_path: Path
) -> None:
    """The instant between the destination committing a file's rows and dlt recording the job as done:
    the next run loads that file again, and must not repeat its rows (append, replace and merge)."""
    run = PausedRun(scenario, tmp_path, pause=False, kill_after_commit=scenario.table)
    code, out, err = run.finish()
    assert code == -9 and run.marker.exists(), (
        f"the run was not killed after a {scenario.table} job:\n{out}\n{err}"
    )
    assert scenario.module.create_pipeline().has_pending_data, "the killed run's package is still there"

    report = scenario.run(**scenario.second_run)
    assert report.resumed_load_ids, "the next run finished the killed run's package first"
    scenario.expect(warehouse, source)
    scenario.state_behind_data(stored_state(scenario.name), warehouse, source)
