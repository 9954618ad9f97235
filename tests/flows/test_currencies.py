"""The currencies flow under Prefect's test harness: success, retries observed, reports published."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from prefect.states import State

import flows.currencies as flow_module
from tests.fakes.frankfurter import FakeFrankfurter, catalogue_codes
from tests.fixtures.prefect import artifacts, run_flow, task_runs, without_retry_delay
from tests.fixtures.warehouse import Warehouse

pytestmark = pytest.mark.usefixtures("prefect_harness")

RETRIES = 3
"""The production policy, pinned here (not imported from ``utils.orchestration``): see test_operations.py."""


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    without_retry_delay(monkeypatch, flow_module, "load_currencies")


def test_flow_loads_and_publishes_a_run_report(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    run = run_flow(flow_module.currencies_flow)
    assert run.state.is_completed()
    result = run.value
    assert result["rows_by_table"] == {"currencies": len(catalogue_codes(include_legacy=False))}
    assert warehouse.scalar("select count(*) from currencies.currencies") == result["total_rows"]
    # one run report (a run longer than PROGRESS_AFTER_SECONDS also has a progress artefact)
    [artifact] = [a for a in artifacts(run.id) if a.key == "currencies-run-report"]
    assert json.loads(artifact.data) == [
        {"table": "currencies", "rows": result["total_rows"], "new columns": "(new table)"}
    ]
    assert "## currencies: succeeded" in artifact.description and "- duration: sync" in artifact.description


def test_retries_are_observed_on_the_task_run(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, no_retry_delay: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")  # each task attempt makes one HTTP request
    frankfurter.fail(503, times=2)
    state: State[Any] = flow_module.currencies_flow(return_state=True)
    assert state.is_completed()
    [(task_run, states)] = task_runs(state.state_details.flow_run_id)
    assert task_run.run_count == 3
    names = [s.name for s in states]
    assert names.count("Retrying") == 2 and names[-1] == "Completed"
    assert len(frankfurter.requests) == 3


class RecordingClock:
    """Prefect's task engine clock with ``sleep`` recorded instead of waited: the waits between attempts
    are observed as the engine computes them from the production policy, without the minutes they take."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_the_waits_between_attempts_follow_the_production_backoff(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.task_engine

    clock = RecordingClock()
    monkeypatch.setattr(prefect.task_engine, "time", clock)
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    frankfurter.fail(503, times=100)
    state: State[Any] = flow_module.currencies_flow(return_state=True)  # the production task and policy
    assert state.is_failed()
    [(task_run, states)] = task_runs(state.state_details.flow_run_id)
    assert task_run.run_count == 4 and len(frankfurter.requests) == 4
    # [10, 30, 90] s, each stretched by Prefect's jitter (factor 0.5): within [0.63 d, 1.5 d]
    assert len(clock.sleeps) == 3, clock.sleeps
    for waited, delay in zip(clock.sleeps, [10, 30, 90], strict=True):
        assert 0.62 * delay - 2 <= waited <= 1.5 * delay, (clock.sleeps, delay)
    scheduled = [
        (s.state_details.scheduled_time - s.timestamp).total_seconds()
        for s in states
        if s.name == "AwaitingRetry"
    ]
    assert len(scheduled) == 3, "the API recorded each retry scheduled into the future"
    for ahead, delay in zip(scheduled, [10, 30, 90], strict=True):
        assert 0.62 * delay - 2 <= ahead <= 1.5 * delay + 2, (scheduled, delay)


def test_a_retry_really_waits_its_delay(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one wall-clock wait: a short delay, so the suite stays fast."""
    task = flow_module.load_currencies.with_options(retry_delay_seconds=[0.8], retry_jitter_factor=None)
    monkeypatch.setattr(flow_module, "load_currencies", task)
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    frankfurter.fail(503, times=1)
    assert flow_module.currencies_flow(return_state=True).is_completed()
    first, second = (r.received_at for r in frankfurter.requests)
    assert second - first >= 0.8, f"the retry came {second - first:.2f} s after the failure"


def test_exhausted_retries_fail_the_flow(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, no_retry_delay: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    frankfurter.fail(503, times=100)
    state: State[Any] = flow_module.currencies_flow(return_state=True)
    assert state.is_failed()
    [(task_run, _)] = task_runs(state.state_details.flow_run_id)
    assert task_run.run_count == RETRIES + 1
    assert len(frankfurter.requests) == RETRIES + 1
    assert warehouse.tables("currencies") == set()
