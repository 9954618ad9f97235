"""The currencies flow under Prefect's test harness: success, retries observed, reports published."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prefect.states import State

import flows.currencies as flow_module
from tests.fakes.frankfurter import CURRENCIES, FakeFrankfurter
from tests.fixtures.prefect import artifacts, task_runs, without_retry_delay
from tests.fixtures.warehouse import Warehouse
from utils.orchestration import RETRIES, RETRY_DELAYS, RETRY_JITTER

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    without_retry_delay(monkeypatch, flow_module, "load_currencies")


def test_task_retry_policy_is_exponential_with_jitter() -> None:
    task = flow_module.load_currencies
    assert task.retries == RETRIES >= 3
    assert task.retry_delay_seconds == RETRY_DELAYS == [10, 30, 90]
    assert task.retry_jitter_factor == RETRY_JITTER > 0


def test_flow_loads_and_publishes_a_run_report(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    state: State[Any] = flow_module.currencies_flow(return_state=True)
    assert state.is_completed()
    result = state.result()
    assert result["rows_by_table"] == {"currencies": sum(1 for c in CURRENCIES if c.end is None)}
    assert warehouse.scalar("select count(*) from currencies.currencies") == result["total_rows"]
    [artifact] = artifacts(state.state_details.flow_run_id)
    assert artifact.key == "currencies-run-report"
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
