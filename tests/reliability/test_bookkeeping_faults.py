"""The destination fails while dlt writes its own bookkeeping: the pipeline state or the ``_dlt_loads`` row.

That is where dlt users have found duplicates (dlt issue 4052: the data committed, the state write
failed, the next run loaded the same rows again). The fault is raised by the destination's SQL client
as dlt's own translation of a DuckDB I/O error, on the real ``INSERT`` of the state row or of the
completed-load row, after a first good run; the data statements around it are real. A brief fault
(one failure) must leave the run to finish; a lasting one must fail the run clearly, and the retry
must then leave exactly the source's data, with state and ``_dlt_loads`` agreeing with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pytest
from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fixtures.warehouse import Warehouse
from tests.reliability.scenarios import (
    EXCHANGE_RATES_SCENARIO,
    HUBSPOT_SCENARIO,
    PRODUCTS_SCENARIO,
    Scenario,
    after_a_first_run,
    completed_loads,
    stored_state,
)
from utils.runner import attempt

pytestmark = pytest.mark.reliability

TABLES = {"state": "_dlt_pipeline_state", "loads": "_dlt_loads"}
# currencies (replace) keeps no cursor, so a run that changes nothing writes no state row
STATEFUL = [
    pytest.param(s, id=str(s)) for s in (EXCHANGE_RATES_SCENARIO, HUBSPOT_SCENARIO, PRODUCTS_SCENARIO)
]


@dataclass
class BookkeepingFault:
    """Fails the next ``times`` INSERTs into one of dlt's tables, as a lost connection would."""

    table: str
    times: int = 0
    raised: int = 0

    def matches(self, query: Any) -> bool:
        text = str(query).lstrip().upper()
        return text.startswith("INSERT") and f'"{self.table.upper()}"' in text.split("(")[0]


@pytest.fixture
def bookkeeping(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, BookkeepingFault]]:
    faults = {name: BookkeepingFault(table) for name, table in TABLES.items()}
    original = DuckDbSqlClient.execute_sql

    def execute_sql(self: DuckDbSqlClient, sql: Any, *args: Any, **kwargs: Any) -> Any:
        for fault in faults.values():
            if fault.times > 0 and fault.matches(sql):
                fault.times -= 1
                fault.raised += 1
                lost = duckdb.IOException(f"injected: connection lost while writing {fault.table}")
                raise self._make_database_exception(lost)
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(DuckDbSqlClient, "execute_sql", execute_sql)
    yield faults


@pytest.fixture
def source(request: pytest.FixtureRequest, scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> Any:
    return after_a_first_run(request, scenario, monkeypatch)


def assert_consistent(scenario: Scenario, warehouse: Warehouse, source: Any) -> None:
    scenario.expect(warehouse, source)  # every row once, no row of an unfinished load visible
    state = stored_state(scenario.name)
    scenario.state_behind_data(state, warehouse, source)
    local = {k: v for k, v in scenario.module.create_pipeline().state.items() if k != "_local"}
    assert state == local, "the state in the destination is the state the pipeline carries on from"


@pytest.mark.parametrize("scenario", STATEFUL)
@pytest.mark.parametrize("what", ["state", "loads"])
def test_a_brief_fault_while_writing_bookkeeping_loses_and_duplicates_nothing(
    scenario: Scenario, what: str, source: Any, warehouse: Warehouse, bookkeeping: dict[str, BookkeepingFault]
) -> None:
    fault = bookkeeping[what]
    fault.times = 1
    loads = completed_loads(warehouse, scenario.name)
    try:
        with attempt("run-2"):
            scenario.run(**scenario.second_run)
        failed = False
    except PipelineStepFailed as exc:
        failed = True
        assert exc.step == "load" and "connection lost" in str(exc), exc
        with attempt("run-2"):  # the orchestrator's retry
            scenario.run(**scenario.second_run)
    assert fault.raised == 1, f"the {fault.table} write never happened: the test proved nothing"
    assert len(completed_loads(warehouse, scenario.name)) == len(loads) + 1, "one more completed load"
    assert_consistent(scenario, warehouse, source)
    assert scenario.module.create_pipeline().has_pending_data is False
    print(f"{scenario} {what}: {'failed, retried' if failed else 'recovered within the run'}")


@pytest.mark.parametrize("scenario", STATEFUL)
@pytest.mark.parametrize("what", ["state", "loads"])
def test_a_lasting_fault_fails_clearly_and_the_retry_loads_once(
    scenario: Scenario, what: str, source: Any, warehouse: Warehouse, bookkeeping: dict[str, BookkeepingFault]
) -> None:
    fault = bookkeeping[what]
    fault.times = 1000
    loads = completed_loads(warehouse, scenario.name)
    state_before = stored_state(scenario.name)
    with attempt("run-2"), pytest.raises(PipelineStepFailed) as exc:
        scenario.run(**scenario.second_run)
    assert exc.value.step == "load"
    assert fault.table in str(exc.value), f"the error names what failed: {exc.value}"
    assert completed_loads(warehouse, scenario.name) == loads, "no load recorded as complete"
    assert stored_state(scenario.name) == state_before, "the state a fresh worker restores did not move"
    assert scenario.module.create_pipeline().has_pending_data, "the package waits for the retry"

    fault.times = 0  # the destination is back
    source.reset()
    with attempt("run-2"):
        report = scenario.run(**scenario.second_run)
    assert report.extracted is False, "the retry finished the package instead of reading the source again"
    assert len(completed_loads(warehouse, scenario.name)) == len(loads) + 1
    assert_consistent(scenario, warehouse, source)
