"""The hubspot flow under Prefect's test harness: a daily incremental load publishes its report."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prefect.states import State

import flows.hubspot as flow_module
from tests.fakes.hubspot import FakeHubSpot
from tests.fixtures.prefect import artifacts
from tests.fixtures.warehouse import Warehouse

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_task_is_tagged_for_its_pipeline() -> None:
    # the retry policy is pinned by value for every task in tests/flows/test_operations.py
    assert set(flow_module.load_hubspot.tags) == {"dlt", "hubspot"}


def test_flow_loads_incrementally_and_publishes_a_run_report(
    hubspot: FakeHubSpot, warehouse: Warehouse
) -> None:
    ids = hubspot.add("deals", 120)
    first: State[Any] = flow_module.hubspot_flow(objects=["deals"], return_state=True)
    assert first.is_completed() and first.result()["rows_by_table"] == {"deals": 120}
    hubspot.modify("deals", ids[:7], dealstage="closedwon")
    second: State[Any] = flow_module.hubspot_flow(objects=["deals"], return_state=True)
    assert second.result()["rows_by_table"] == {"deals": 7}
    assert warehouse.scalar("select count(*) from hubspot.deals where dealstage = 'closedwon'") == 7
    [report] = artifacts(second.state_details.flow_run_id)
    assert report.key == "hubspot-run-report"
    assert {"table": "deals", "rows": 7, "new columns": ""} in json.loads(report.data)
