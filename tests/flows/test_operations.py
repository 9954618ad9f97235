"""Flows that operate themselves: resume on retry, reports, logs, alerts, single flight, freshness.

Shown on the currencies flow under Prefect's test harness, with the look-alike API and DuckDB.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import dlt
import pytest
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.states import State

import flows.currencies as currencies_flow_module
import flows.freshness as freshness_module
from tests.fakes.frankfurter import FakeFrankfurter, catalogue_codes
from tests.fakes.webhook import FakeWebhook
from tests.fixtures.faults import Faults
from tests.fixtures.prefect import artifacts, logs, run_flow, task_runs, without_retry_delay
from tests.fixtures.warehouse import Warehouse
from utils import orchestration
from utils.metrics import METRICS_SCHEMA

pytestmark = pytest.mark.usefixtures("prefect_harness")
ACTIVE = len(catalogue_codes(include_legacy=False))


def pipeline_tasks() -> list[Any]:
    """Every Prefect task defined in ``flows/*.py``: each loads or checks a pipeline."""
    import importlib
    from pathlib import Path

    from prefect import Task

    found = []
    for path in sorted((Path(__file__).resolve().parents[2] / "flows").glob("*.py")):
        if path.stem != "__init__":
            module = importlib.import_module(f"flows.{path.stem}")
            found += [
                pytest.param(v, id=f"{path.stem}.{k}") for k, v in vars(module).items() if isinstance(v, Task)
            ]
    return found


@pytest.mark.parametrize("task", pipeline_tasks())
def test_every_task_retries_three_times_after_10_30_and_90_seconds_with_jitter(task: Any) -> None:
    """The policy pinned by value, not compared with the constants it is built from."""
    assert task.retries == 3
    assert task.retry_delay_seconds == [10, 30, 90]
    assert task.retry_jitter_factor == 0.5  # each delay d waits between 0.63 d and 1.5 d (Prefect's clamp)
    assert task.retry_condition_fn is orchestration.retry_unless_busy


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    without_retry_delay(monkeypatch, currencies_flow_module, "load_currencies")
    without_retry_delay(monkeypatch, freshness_module, "check_freshness")


def run_currencies() -> State[Any]:
    return currencies_flow_module.currencies_flow(return_state=True)


@pytest.mark.parametrize("step", ["normalize", "load"])
def test_a_retry_after_a_late_failure_finishes_the_package_without_rereading(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, faults: Faults, step: str
) -> None:
    getattr(faults, f"fail_{step}")()
    run = run_flow(currencies_flow_module.currencies_flow)
    assert run.state.is_completed()
    [(task_run, states)] = task_runs(run.id)
    assert task_run.run_count == 2 and [s.name for s in states].count("Retrying") == 1
    assert len(frankfurter.requests) == 1, "the source was read once"
    result = run.value
    assert result["extracted"] is False and len(result["resumed_load_ids"]) == 1
    assert warehouse.scalar("select count(*) from currencies.currencies") == ACTIVE


def test_run_report_on_failure_names_the_step_and_error(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, faults: Faults
) -> None:
    faults.fail_load(times=10)
    state = run_currencies()
    assert state.is_failed()
    reports = [
        a.description for a in artifacts(state.state_details.flow_run_id) if a.key == "currencies-run-report"
    ]
    assert len(reports) == orchestration.RETRIES + 1, "one report per attempt"
    assert all("**failed at load**: InjectedFault: injected load fault" in r for r in reports)
    assert "destination: `duckdb`, dataset: `currencies`" in reports[0]


@pytest.fixture
def dlt_info_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """dlt reads its log level once per process: switch it to INFO for one test, then back."""
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "INFO")
    dlt.current.run_context().reload()
    yield
    monkeypatch.delenv("RUNTIME__LOG_LEVEL")
    dlt.current.run_context().reload()


@pytest.mark.usefixtures("dlt_info_logs")
def test_dlt_and_runner_logs_reach_the_prefect_run_log(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, faults: Faults
) -> None:
    faults.fail_load()
    state = run_currencies()
    records = logs(state.state_details.flow_run_id)
    by_logger = {r.name for r in records}
    assert "data_pipelines.runner" in by_logger
    assert any(name == "dlt" or name.startswith("dlt.") for name in by_logger), by_logger
    assert any("finishing 1 pending load package" in r.message for r in records)


def test_a_final_failure_alerts_through_the_notification_block(
    frankfurter: FakeFrankfurter,
    warehouse: Warehouse,
    alert_webhook: FakeWebhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    frankfurter.fail(503, times=100, body='{"message": "maintenance window"}')
    state = run_currencies()
    assert state.is_failed()
    [message] = alert_webhook.messages
    assert message["subject"] == "data-pipelines: flow currencies failed"
    assert "HTTP 503" in message["text"] and "maintenance window" in message["text"]
    assert str(state.state_details.flow_run_id) in message["text"]


def test_no_alert_when_a_retry_succeeds(
    frankfurter: FakeFrankfurter,
    warehouse: Warehouse,
    alert_webhook: FakeWebhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    frankfurter.fail(503, times=2)
    assert run_currencies().is_completed()
    assert alert_webhook.messages == []


def test_two_runs_of_one_pipeline_never_overlap(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    frankfurter.latency = 1.5
    states: list[State[Any]] = []
    threads = [threading.Thread(target=lambda: states.append(run_currencies())) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.3)
    for thread in threads:
        thread.join(timeout=120)
    assert [s.is_completed() for s in states] == [True, True]
    first, second = sorted(r.received_at for r in frankfurter.requests)  # one read per run
    assert second - first >= 1.5, "the second run read the source only after the first had finished"
    assert frankfurter.max_in_flight == 1, "the two runs never read the source at the same time"
    assert warehouse.scalar("select count(*) from currencies.currencies") == ACTIVE
    loads = "select count(*) from currencies._dlt_loads where status = 0 and schema_name <> ?"  # data loads
    assert warehouse.scalar(loads, METRICS_SCHEMA) == 2


def test_a_run_that_cannot_get_the_slot_gives_up_clearly_and_changes_nothing(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orchestration, "LOCK_TIMEOUT_SECONDS", 0.5)
    name = orchestration.lock_name("currencies")
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    with concurrency(name, occupy=1, strict=True):  # another run holds the pipeline
        state = run_currencies()
    assert state.is_failed()
    assert "pipeline currencies is already running" in str(state.message)
    [(task_run, _)] = task_runs(state.state_details.flow_run_id)
    assert task_run.run_count == 1, "a busy pipeline is not retried: the attempt changed nothing"
    assert frankfurter.requests == [] and warehouse.tables("currencies") == set()


def test_freshness_passes_for_a_fresh_dataset(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    assert run_currencies().is_completed()
    run = run_flow(freshness_module.freshness_flow, pipelines=["currencies"])
    assert run.state.is_completed()
    [result] = run.value
    assert result["stale"] is False and "last successful load" in result["summary"]


def test_freshness_fails_and_alerts_listing_stale_datasets(
    frankfurter: FakeFrankfurter,
    warehouse: Warehouse,
    alert_webhook: FakeWebhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run_currencies().is_completed()
    monkeypatch.setattr(freshness_module, "freshness_bound", lambda name: dt.timedelta(0))
    state = freshness_module.freshness_flow(pipelines=["currencies"], return_state=True)
    assert state.is_failed()
    [message] = alert_webhook.messages
    assert message["subject"] == "data-pipelines: flow freshness failed"
    assert "stale datasets: currencies (duckdb): last successful load" in message["text"]
    [report] = [a for a in artifacts(state.state_details.flow_run_id) if a.key == "freshness-report"]
    assert "| currencies | STALE |" in report.data


def test_a_never_loaded_dataset_is_stale(warehouse: Warehouse) -> None:
    state = freshness_module.freshness_flow(pipelines=["currencies"], return_state=True)
    assert state.is_failed()
    assert "currencies (duckdb): never loaded" in str(state.message)


def test_every_declared_pipeline_has_a_freshness_bound() -> None:
    from declarations import declarations, freshness_bound

    assert all(
        freshness_bound(d.name) == d.freshness_bound > dt.timedelta(0) for d in declarations().values()
    )


def test_an_undeclared_pipeline_is_refused() -> None:
    state = freshness_module.freshness_flow(pipelines=["no_such_pipeline"], return_state=True)
    assert state.is_failed()
    assert "not declared in declarations/: no_such_pipeline" in str(state.message)
