"""The runner's ``failed_tables``: a resource whose extraction fails is left out, the others load, the
run fails naming it; a retry of the same run reads it again even after a load failure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
import pytest
from dlt.extract.exceptions import ResourceExtractionError
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fixtures.faults import Faults
from tests.fixtures.warehouse import Warehouse
from utils.destinations import get_destination
from utils.runner import TablesLeftOut, attempt, run_pipeline


class TwoTables:
    """A source of two merged tables; ``broken`` makes ``orders`` fail after its first row."""

    def __init__(self) -> None:
        self.broken = True
        self.reads = {"orders": 0, "customers": 0}

    def __call__(self) -> Any:
        @dlt.source(name="shop")
        def shop() -> Any:
            @dlt.resource(name="orders", write_disposition="merge", primary_key="id")
            def orders() -> Iterator[dict[str, Any]]:
                self.reads["orders"] += 1
                yield {"id": 1, "total": 10}
                if self.broken:
                    raise PermissionError("permission denied for table orders")
                yield {"id": 2, "total": 20}

            @dlt.resource(name="customers", write_disposition="merge", primary_key="id")
            def customers() -> Iterator[dict[str, Any]]:
                self.reads["customers"] += 1
                yield from ({"id": i} for i in range(3))

            return orders, customers

        return shop()


def make_pipeline() -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name="left_out", destination=get_destination(), dataset_name="left_out")


def test_a_retry_after_a_load_failure_reads_the_left_out_table_again(
    warehouse: Warehouse, faults: Faults
) -> None:
    source = TwoTables()
    faults.fail_load()
    with attempt("run-1"), pytest.raises(PipelineStepFailed) as failure:
        run_pipeline(make_pipeline(), source, failed_tables={})
    assert failure.value.step == "load", "the load of the others failed after orders was left out"
    assert failure.value.run_report.failed_tables.keys() == {"orders"}  # type: ignore[attr-defined]
    assert make_pipeline().has_pending_data

    source.broken = False
    with attempt("run-1"):  # the orchestrator's retry: finishes the package, then reads again
        report = run_pipeline(make_pipeline(), source, failed_tables={})
    assert report.status == "succeeded" and report.extracted
    # customers: read by the failed extract, the one without orders, and the retry (merged: harmless)
    assert source.reads == {"orders": 2, "customers": 3}
    assert warehouse.query("select id, total from left_out.orders order by id") == [(1, 10), (2, 20)]
    assert warehouse.scalar("select count(*) from left_out.customers") == 3, "merged again: once each"


def test_without_failed_tables_one_failing_resource_fails_the_whole_extract(warehouse: Warehouse) -> None:
    """Opt-in: other pipelines keep dlt's all-or-nothing extract."""
    with pytest.raises(PipelineStepFailed) as failure:
        run_pipeline(make_pipeline(), TwoTables())
    assert failure.value.step == "extract" and not isinstance(failure.value.exception, TablesLeftOut)
    assert warehouse.tables("left_out") == set()


def test_when_every_table_fails_the_run_fails_with_its_own_error(warehouse: Warehouse) -> None:
    """Nothing left to extract: the run fails as it always did (the resource's error), naming it."""

    @dlt.source(name="one")
    def one() -> Any:
        @dlt.resource(name="orders")
        def orders() -> Iterator[dict[str, Any]]:
            raise PermissionError("permission denied for table orders")
            yield {}

        return orders

    with pytest.raises(PipelineStepFailed) as failure:
        run_pipeline(make_pipeline(), one, failed_tables={})
    assert isinstance(failure.value.exception, ResourceExtractionError)
    report = failure.value.run_report  # type: ignore[attr-defined]
    assert report.failed_tables == {"orders": "PermissionError: permission denied for table orders"}
    assert warehouse.tables("left_out") == set()
