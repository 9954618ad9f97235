"""The exchange_rates flows under Prefect's test harness: daily and backfill runs, retries, reports."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from prefect.states import State

import flows.exchange_rates as flow_module
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.prefect import artifacts, run_flow, task_runs, without_retry_delay
from tests.fixtures.warehouse import Warehouse

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(autouse=True)
def two_quotes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", '["USD", "GBP"]')


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("load_latest_rates", "backfill_rates"):
        without_retry_delay(monkeypatch, flow_module, name)


def test_backfill_then_daily_flow(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    backfill = run_flow(
        flow_module.exchange_rates_backfill_flow,
        start_date=dt.date(2026, 11, 2),
        end_date=dt.date(2026, 11, 13),
    )
    assert backfill.state.is_completed()
    assert backfill.value["rows_by_table"] == {"rates": 2 * 10}
    assert [a.key for a in artifacts(backfill.id)] == ["exchange-rates-run-report"]

    frankfurter.reset()
    daily = run_flow(flow_module.exchange_rates_daily_flow)
    assert daily.state.is_completed() and daily.value["rows_by_table"] == {"rates": 2 * 5}
    assert [r.param("from") for r in frankfurter.requests_to("/rates")] == ["2026-11-14"]
    assert warehouse.scalar("select count(*) from exchange_rates.rates") == 30
    assert (
        warehouse.scalar(
            "select count(distinct (rate_date, base_currency, quote_currency)) from exchange_rates.rates"
        )
        == 30
    )


def test_a_retried_daily_run_loads_each_rate_once(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, no_retry_delay: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    flow_module.exchange_rates_backfill_flow(start_date=dt.date(2026, 11, 2), end_date=dt.date(2026, 11, 13))
    frankfurter.fail(503, times=2, path="/rates")
    state: State[Any] = flow_module.exchange_rates_daily_flow(return_state=True)
    assert state.is_completed()
    [(task_run, _)] = task_runs(state.state_details.flow_run_id)
    assert task_run.run_count == 3
    assert warehouse.scalar("select count(*) from exchange_rates.rates") == 30


def test_a_backfill_with_the_dates_reversed_fails_before_loading(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    state: State[Any] = flow_module.exchange_rates_backfill_flow(
        start_date=dt.date(2026, 11, 13), end_date=dt.date(2026, 11, 2), return_state=True
    )
    assert state.is_failed()
    assert frankfurter.requests == [] and warehouse.tables("exchange_rates") == set()
