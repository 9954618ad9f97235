"""A long run under Prefect publishes a progress artefact that moves from 0 to 100 %."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import pytest
from prefect.states import State

import flows.exchange_rates as flow_module
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.prefect import artifacts
from tests.fixtures.warehouse import Warehouse
from utils import orchestration

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every progress value sent to Prefect, in order (the real calls still go to the harness)."""
    sent: list[float] = []
    create, update = orchestration.create_progress_artifact, orchestration.update_progress_artifact

    def creating(progress: float, **kwargs: Any) -> Any:
        sent.append(progress)
        return create(progress, **kwargs)

    def updating(artifact_id: UUID, progress: float, **kwargs: Any) -> Any:
        sent.append(progress)
        return update(artifact_id, progress, **kwargs)

    monkeypatch.setattr(orchestration, "create_progress_artifact", creating)
    monkeypatch.setattr(orchestration, "update_progress_artifact", updating)
    return sent


def test_a_backfill_publishes_progress_from_0_to_100(
    frankfurter: FakeFrankfurter,
    warehouse: Warehouse,
    published: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", '["USD", "GBP"]')
    monkeypatch.setattr(orchestration, "PROGRESS_AFTER_SECONDS", 0.0)  # as if the run were long
    monkeypatch.setattr(orchestration, "PROGRESS_PUBLISH_SECONDS", 0.0)
    state: State[Any] = flow_module.exchange_rates_backfill_flow(
        start_date=dt.date(2021, 1, 1), end_date=dt.date(2025, 12, 31), return_state=True
    )
    assert state.is_completed()
    assert published[0] == 0.0 and published[-1] == 100.0
    assert published == sorted(published), "progress never goes back"
    assert len(set(published)) >= 5, published  # extract, normalise and load each move it
    found = {a.key: a for a in artifacts(state.state_details.flow_run_id)}
    assert set(found) == {"exchange-rates-run-report", "exchange-rates-progress"}
    assert float(found["exchange-rates-progress"].data) == 100.0


def test_a_short_run_publishes_only_its_report(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, published: list[float]
) -> None:
    state: State[Any] = flow_module.exchange_rates_daily_flow(return_state=True)
    assert state.is_completed()
    assert published == []
    assert [a.key for a in artifacts(state.state_details.flow_run_id)] == ["exchange-rates-run-report"]
