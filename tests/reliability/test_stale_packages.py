"""A worker's pending package that another worker's run has since superseded is dropped, not loaded.

Found by the fleet test (``tests/fleet``): a worker killed mid-load keeps its package; the next run, on
another worker, loads the same data again from the destination's state; when the first worker later
ran the pipeline, it finished its old package too and exchange_rates held those days twice. Here the
same sequence runs in one process with two pipeline folders (two workers' disks) and one warehouse,
for every scenario: the load fails on worker A (its package stays), worker B loads, worker A runs
again - exactly the source's data, once. Superseded means: the destination records a completed load
(``_dlt_loads``) extracted after the package, whether or not that load stored state.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import currencies
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.faults import Faults
from tests.fixtures.warehouse import Warehouse
from tests.reliability.scenarios import Scenario, scenario_params, stored_state
from utils.runner import _newest_completed_load, attempt

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
    assert report_a.dropped_load_ids and not report_a.resumed_load_ids, "worker A dropped its package"
    scenario.state_behind_data(stored_state(scenario.name), warehouse, source)
    assert scenario.module.create_pipeline().has_pending_data is False


def test_a_replace_without_state_does_not_bring_back_a_list_a_later_load_replaced(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    """currencies keeps no cursor, so a later load stores no new state: only ``_dlt_loads`` shows that
    worker A's package is older than what the table holds. A retry of A's run (same run key) would
    otherwise finish that package and not read the source again: the old name would come back."""
    worker_a, worker_b = warehouse.data_dir / "worker-a", warehouse.data_dir / "worker-b"
    monkeypatch.setenv("DLT_DATA_DIR", str(worker_a))
    currencies.run()  # stores the pipeline's (cursor-free) state once

    faults.fail_load()
    with attempt("run-1"), pytest.raises(PipelineStepFailed):
        currencies.run()  # worker A reads "British Pound", then its load fails
    renamed = dataclasses.replace(frankfurter.currencies["GBP"], name="Pound Sterling")
    monkeypatch.setitem(frankfurter.currencies, "GBP", renamed)  # the look-alike is shared: undone after

    monkeypatch.setenv("DLT_DATA_DIR", str(worker_b))
    currencies.run()  # another worker loads the newer list; the state is unchanged, so none is stored

    monkeypatch.setenv("DLT_DATA_DIR", str(worker_a))
    with attempt("run-1"):  # Prefect's retry of A's run, on A
        report = currencies.run()
    assert (
        warehouse.scalar("select name from currencies.currencies where iso_code = 'GBP'") == "Pound Sterling"
    )
    assert report.dropped_load_ids and not report.resumed_load_ids
    assert warehouse.scalar("select count(distinct _dlt_load_id) from currencies.currencies") == 1


def test_the_filesystem_destination_reports_its_newest_completed_load(tmp_path: Path) -> None:
    """S3 (dlt's filesystem destination) answers from its one-file-per-load ``_dlt_loads`` folder."""
    bucket = dlt.destinations.filesystem(tmp_path.joinpath("bucket").as_uri())
    pipeline = dlt.pipeline("fs_loads", destination=bucket, dataset_name="d", pipelines_dir=str(tmp_path))
    pipeline.extract([{"a": 1}], table_name="t")
    assert _newest_completed_load(pipeline, "fs_loads") is None  # nothing loaded yet
    pipeline.normalize()
    pipeline.load()
    info = pipeline.run([{"a": 2}], table_name="t")
    assert _newest_completed_load(pipeline, "fs_loads") == info.loads_ids[-1]
    assert _newest_completed_load(pipeline, "another_schema") is None
