"""The status table under Prefect: the newest failed run is shown, and the freshness flow publishes it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prefect.states import State

import flows.currencies as currencies_flow_module
import flows.freshness as freshness_module
from declarations import pipelines
from pipelines._status import collect
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.faults import Faults
from tests.fixtures.prefect import artifacts, without_retry_delay
from tests.fixtures.warehouse import Warehouse
from utils.orchestration import RETRIES

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    without_retry_delay(monkeypatch, currencies_flow_module, "load_currencies")
    without_retry_delay(monkeypatch, freshness_module, "check_freshness")


def test_the_newest_failed_run_is_the_last_failure_until_a_run_succeeds(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, faults: Faults
) -> None:
    assert currencies_flow_module.currencies_flow(return_state=True).is_completed()
    faults.fail_load(times=RETRIES + 1)  # every attempt of this run, none of the next
    assert currencies_flow_module.currencies_flow(return_state=True).is_failed()
    [status] = collect(["currencies"])
    assert status.state == "fresh", "the earlier load is still within its bound"
    assert status.last_failure is not None and "Failed" in status.last_failure
    assert "injected load fault" in status.last_failure

    assert currencies_flow_module.currencies_flow(return_state=True).is_completed()
    [status] = collect(["currencies"])
    assert status.last_failure is None


def test_the_freshness_flow_publishes_the_status_table(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    assert currencies_flow_module.currencies_flow(return_state=True).is_completed()
    state: State[Any] = freshness_module.freshness_flow(return_state=True)
    assert state.is_failed(), "the other pipelines were never loaded"
    [table] = [a for a in artifacts(state.state_details.flow_run_id) if a.key == "pipeline-status"]
    rows = {row["pipeline"]: row for row in json.loads(table.data)}
    assert set(rows) == set(pipelines()), "every declared pipeline has a row"
    assert rows["currencies"]["state"] == "fresh" and rows["currencies"]["destination"] == "duckdb:currencies"
    assert rows["hubspot"]["state"] == "STALE" and rows["hubspot"]["last load (UTC)"] == "never"
