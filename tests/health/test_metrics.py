"""Recording load metrics (utils/metrics.py): what a row holds; it never fails or holds up a load."""

from __future__ import annotations

import json
import logging

import duckdb
import pytest

from tests.fixtures.warehouse import Warehouse
from tests.utils.test_runner import CountingSource, make_pipeline
from utils.metrics import WRITER_SUFFIX
from utils.runner import run_pipeline


def metrics(warehouse: Warehouse) -> list[tuple[object, ...]]:
    return warehouse.query(
        "select load_id, table_name, rows_loaded, columns_present, new_columns, new_table"
        " from runner_test._pipeline_metrics order by load_id"
    )


def test_a_row_per_table_and_load_with_the_columns_that_held_values(warehouse: Warehouse) -> None:
    source = CountingSource("merge", rows=4)
    first = run_pipeline(make_pipeline(), source)
    source.extra_column = True
    second = run_pipeline(make_pipeline(), source)
    assert metrics(warehouse) == [
        (first.load_ids[0], "items", 4, json.dumps(["id", "value"]), json.dumps(["id", "value"]), True),
        (
            second.load_ids[0],
            "items",
            4,
            json.dumps(["colour", "id", "value"]),
            json.dumps(["colour"]),
            False,
        ),
    ]


def test_a_failing_metrics_load_never_fails_the_run_nor_leaves_a_package_behind(
    warehouse: Warehouse, caplog: pytest.LogCaptureFixture
) -> None:
    source = CountingSource("append", rows=3)
    run_pipeline(make_pipeline(), source)
    with duckdb.connect(str(warehouse.path)) as con:  # a view where dlt expects its table: inserts fail
        con.execute("drop table runner_test._pipeline_metrics")
        con.execute("create view runner_test._pipeline_metrics as select 1 as load_id")
    with caplog.at_level(logging.WARNING, logger="data_pipelines.metrics"):
        report = run_pipeline(make_pipeline(), source)
    assert report.status == "succeeded" and warehouse.scalar("select count(*) from runner_test.items") == 6
    assert "runner_test: load metrics not recorded" in caplog.text
    writer = make_pipeline(f"runner_test{WRITER_SUFFIX}")
    assert not writer.has_pending_data, "the failed metrics package was dropped"
    third = run_pipeline(make_pipeline(), source)
    assert not third.resumed_load_ids and warehouse.scalar("select count(*) from runner_test.items") == 9


def test_the_checks_read_only_rows_of_completed_metrics_loads(warehouse: Warehouse) -> None:
    """A metrics load that failed after its rows were copied leaves rows no completed load owns."""
    from utils.checks import history

    pipeline = make_pipeline()
    report = run_pipeline(pipeline, CountingSource("append", rows=3))
    with duckdb.connect(str(warehouse.path)) as con:  # what a metrics load cut before _dlt_loads leaves
        con.execute(
            "insert into runner_test._pipeline_metrics by name select * replace"
            " ('9999999999.1' as _dlt_load_id, '9999999999.0' as load_id, 3000 as rows_loaded)"
            " from runner_test._pipeline_metrics"
        )
    assert [(m.load_id, m.rows) for m in history(pipeline)["items"]] == [(report.load_ids[0], 3)]
