"""The hubspot flow under Prefect's test harness: a daily incremental load publishes its report."""

from __future__ import annotations

import json

import pytest

import flows.hubspot as flow_module
from tests.fakes.hubspot import FakeHubSpot
from tests.fixtures.prefect import artifacts, run_flow
from tests.fixtures.warehouse import Warehouse

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_task_is_tagged_for_its_pipeline() -> None:
    # the retry policy is pinned by value for every task in tests/flows/test_operations.py
    assert set(flow_module.load_hubspot.tags) == {"dlt", "hubspot"}


def test_flow_loads_incrementally_and_publishes_a_run_report(
    hubspot: FakeHubSpot, warehouse: Warehouse
) -> None:
    ids = hubspot.add("deals", 120)
    first = run_flow(flow_module.hubspot_flow, objects=["deals"])
    assert first.state.is_completed() and first.value["rows_by_table"] == {"deals": 120}
    hubspot.modify("deals", ids[:7], dealstage="closedwon")
    second = run_flow(flow_module.hubspot_flow, objects=["deals"])
    assert second.value["rows_by_table"] == {"deals": 7}
    assert warehouse.scalar("select count(*) from hubspot.deals where dealstage = 'closedwon'") == 7
    [report] = [a for a in artifacts(second.id) if a.key == "hubspot-run-report"]
    assert {"table": "deals", "rows": 7, "new columns": ""} in json.loads(report.data)
