"""The shared runner: resumable steps, reports, schema changes, local single flight.

Uses small inline dlt resources (one per write disposition) so each guarantee is shown for append,
merge and replace alike; the pipelines' own suites show the same through their real sources.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fixtures.faults import Faults
from tests.fixtures.warehouse import Warehouse
from utils.destinations import get_destination
from utils.metrics import METRICS_SCHEMA
from utils.runner import PipelineBusyError, attempt, pipeline_lock, run_pipeline


class CountingSource:
    """An inline source whose reads are counted; ``rows`` can change between runs."""

    def __init__(self, disposition: str, rows: int = 10) -> None:
        self.disposition = disposition
        self.rows = rows
        self.reads = 0
        self.extra_column = False

    def __call__(self) -> Any:
        @dlt.resource(name="items", write_disposition=self.disposition, primary_key="id")  # type: ignore[call-overload]
        def items() -> Iterator[dict[str, Any]]:
            self.reads += 1
            for i in range(self.rows):
                row = {"id": i, "value": f"v{i}"}
                if self.extra_column:
                    row["colour"] = "blue"
                yield row

        return items


def make_pipeline(name: str = "runner_test") -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name=name, destination=get_destination(), dataset_name=name)


def count(warehouse: Warehouse) -> int:
    return int(warehouse.scalar("select count(*) from runner_test.items"))


@pytest.mark.parametrize("disposition", ["append", "merge", "replace"])
@pytest.mark.parametrize("step", ["normalize", "load"])
def test_retry_after_a_late_failure_resumes_without_reading_the_source(
    warehouse: Warehouse, faults: Faults, disposition: str, step: str
) -> None:
    source = CountingSource(disposition)
    getattr(faults, f"fail_{step}")()
    with attempt("run-1"), pytest.raises(PipelineStepFailed) as exc:
        run_pipeline(make_pipeline(), source)
    assert exc.value.step == step
    assert exc.value.run_report.failed_step == step  # type: ignore[attr-defined]
    assert make_pipeline().has_pending_data

    with attempt("run-1"):  # the orchestrator's retry of the same run
        report = run_pipeline(make_pipeline(), source)
    assert source.reads == 1, "the retry finished the pending package instead of re-reading"
    assert report.extracted is False and len(report.resumed_load_ids) == 1
    assert report.rows_by_table == ({"items": 10} if step == "normalize" else {})
    assert count(warehouse) == 10
    assert warehouse.scalar("select count(distinct id) from runner_test.items") == 10


@pytest.mark.parametrize("disposition", ["append", "merge", "replace"])
def test_retry_after_an_extract_failure_reads_again_and_loads_once(
    warehouse: Warehouse, disposition: str
) -> None:
    source = CountingSource(disposition)
    calls = {"n": 0}

    def flaky() -> Any:
        calls["n"] += 1
        if calls["n"] == 1:

            @dlt.resource(name="items", write_disposition=disposition)  # type: ignore[call-overload]
            def broken() -> Iterator[dict[str, Any]]:
                yield {"id": 0, "value": "v0"}
                raise ConnectionError("source went away mid-read")

            return broken
        return source()

    with attempt("run-1"), pytest.raises(PipelineStepFailed) as exc:
        run_pipeline(make_pipeline(), flaky)
    assert exc.value.step == "extract"
    assert not make_pipeline().has_pending_data, "a failed extract leaves nothing half-done behind"
    with attempt("run-1"):
        run_pipeline(make_pipeline(), flaky)
    assert source.reads == 1
    assert count(warehouse) == 10


@pytest.mark.parametrize("next_run", [None, "run-2"], ids=["cli", "next-scheduled-run"])
def test_a_new_run_finishes_leftovers_then_extracts(
    warehouse: Warehouse, faults: Faults, next_run: str | None
) -> None:
    source = CountingSource("append", rows=3)
    faults.fail_load()
    with attempt("run-1"), pytest.raises(PipelineStepFailed):
        run_pipeline(make_pipeline(), source)
    if next_run is None:
        report = run_pipeline(make_pipeline(), source)  # a CLI call: every call is a new run
    else:
        with attempt(next_run):
            report = run_pipeline(make_pipeline(), source)
    assert source.reads == 2 and report.extracted and len(report.load_ids) == 2
    assert len(report.resumed_load_ids) == 1
    assert count(warehouse) == 6, "append: the leftover package and the new one, each once"


def test_report_lists_rows_load_ids_steps_and_schema_changes(warehouse: Warehouse) -> None:
    source = CountingSource("merge", rows=4)
    first = run_pipeline(make_pipeline(), source)
    assert first.rows_by_table == {"items": 4} and first.new_tables == ["items"]
    assert set(first.step_seconds) == {"sync", "extract", "normalize", "load"}
    data_loads = "select max(load_id) from runner_test._dlt_loads where schema_name <> ?"  # not metrics
    assert first.load_ids == [warehouse.scalar(data_loads, METRICS_SCHEMA)]
    source.extra_column = True
    second = run_pipeline(make_pipeline(), source)
    assert second.new_tables == [] and second.new_columns == {"items": ["colour"]}
    markdown = second.to_markdown()
    assert "new columns in `items`: colour" in markdown and "| items | 4 |" in markdown
    assert "destination: `duckdb`, dataset: `runner_test`" in markdown


def test_state_comes_back_from_the_destination_on_an_ephemeral_worker(warehouse: Warehouse) -> None:
    reads: list[list[int]] = []

    @dlt.resource(name="events", write_disposition="append", primary_key="id")
    def events(upto: int, cursor: Any = dlt.sources.incremental("id")) -> Iterator[dict[str, Any]]:
        start = 0 if cursor.last_value is None else cursor.last_value + 1
        reads.append(list(range(start, upto)))
        yield from ({"id": i} for i in range(start, upto))

    run_pipeline(make_pipeline(), lambda: events(10))
    warehouse.wipe_pipelines()  # a fresh worker: no local pipeline folder at all
    report = run_pipeline(make_pipeline(), lambda: events(15))
    assert reads[-1] == [10, 11, 12, 13, 14], "the cursor was restored from the destination"
    assert report.rows_by_table == {"events": 5}
    assert warehouse.scalar("select count(*), count(distinct id) from runner_test.events") == 15


def test_two_runs_of_one_pipeline_cannot_overlap(warehouse: Warehouse) -> None:
    pipeline = make_pipeline()
    source = CountingSource("append")
    with pipeline_lock(pipeline), pytest.raises(PipelineBusyError, match=r"already running .*pid"):
        run_pipeline(make_pipeline(), source)
    assert source.reads == 0
    run_pipeline(make_pipeline(), source)
    assert count(warehouse) == 10


def test_a_source_that_cannot_be_built_fails_extract_with_a_report(warehouse: Warehouse) -> None:
    def misconfigured() -> Any:
        raise ValueError("sources.runner_test.start_date is after end_date")

    with pytest.raises(PipelineStepFailed) as exc:
        run_pipeline(make_pipeline(), misconfigured)
    report = exc.value.run_report  # type: ignore[attr-defined]
    assert exc.value.step == "extract" and report.failed_step == "extract"
    assert "start_date is after end_date" in report.error
    assert not make_pipeline().has_pending_data
