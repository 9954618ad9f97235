"""A worker's pending package that another worker's run has since superseded is dropped, not loaded.

Found by the fleet test (``tests/fleet``): a worker killed mid-load keeps its package; the next run, on
another worker, loads the same data again from the destination's state; when the first worker later
ran the pipeline, it finished its old package too and exchange_rates held those days twice. Here the
same sequence runs in one process with two pipeline folders (two workers' disks) and one warehouse,
for every scenario: the load fails on worker A (its package stays), worker B loads, worker A runs
again - exactly the source's data, once.
"""

from __future__ import annotations

from typing import Any

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fixtures.faults import Faults
from tests.fixtures.warehouse import Warehouse
from tests.reliability.scenarios import Scenario, scenario_params, stored_state

pytestmark = pytest.mark.reliability


@pytest.mark.parametrize("scenario", scenario_params())
def test_a_package_superseded_on_another_worker_is_dropped(
    request: pytest.FixtureRequest,
    scenario: Scenario,
    warehouse: Warehouse,
    faults: Faults,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source: Any = request.getfixturevalue(scenario.fake)
    scenario.seed(source, monkeypatch)
    worker_a, worker_b = warehouse.data_dir / "worker-a", warehouse.data_dir / "worker-b"
    monkeypatch.setenv("DLT_DATA_DIR", str(worker_a))
    scenario.run(**scenario.first_run)
    scenario.change(source)

    faults.fail_load()
    with pytest.raises(PipelineStepFailed):
        scenario.run(**scenario.second_run)
    assert scenario.module.create_pipeline().has_pending_data, "worker A keeps its package"

    monkeypatch.setenv("DLT_DATA_DIR", str(worker_b))  # the next run lands on another worker
    report_b = scenario.run(**scenario.second_run)
    assert report_b.extracted and not report_b.resumed_load_ids
    scenario.expect(warehouse, source)

    monkeypatch.setenv("DLT_DATA_DIR", str(worker_a))  # later, worker A runs the pipeline again
    report_a = scenario.run(**scenario.second_run)
    scenario.expect(warehouse, source)
    if scenario.name != "currencies":  # replace keeps no state, so nothing marks its package superseded;
        # finishing it reloads the whole list it read, which a replace may do (docs/reliability.md)
        assert report_a.dropped_load_ids and not report_a.resumed_load_ids, "worker A dropped its package"
    scenario.state_behind_data(stored_state(scenario.name), warehouse, source)
    assert scenario.module.create_pipeline().has_pending_data is False
