"""DuckDB loads: parquet bound for staging is read by the merge or replace SQL, written once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
import pyarrow as pa
import pytest
from dlt.common.schema.typing import TWriteDisposition

from tests.fixtures.warehouse import Warehouse
from utils.destinations import get_destination
from utils.runner import run_pipeline


def _pipeline() -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name="loads", destination=get_destination("duckdb"), dataset_name="l")


def _items(batch: pa.Table, write_disposition: TWriteDisposition) -> Any:
    @dlt.resource(name="items", primary_key="id", write_disposition=write_disposition)
    def items() -> Iterator[pa.Table]:
        yield batch

    return items


@pytest.mark.parametrize("write_disposition", ["merge", "replace"])
def test_staged_parquet_is_read_by_the_followup_not_copied_into_staging(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch, write_disposition: TWriteDisposition
) -> None:
    monkeypatch.setenv("LOAD__TRUNCATE_STAGING_DATASET", "false")  # what reached staging stays there
    first = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    run_pipeline(_pipeline(), lambda: _items(first, write_disposition))
    second = pa.table({"id": [3, 4], "name": ["c2", "d"]})
    run_pipeline(_pipeline(), lambda: _items(second, write_disposition))

    expected = {"merge": [(1, "a"), (2, "b"), (3, "c2"), (4, "d")], "replace": [(3, "c2"), (4, "d")]}
    assert warehouse.query("select id, name from l.items order by id") == expected[write_disposition]
    assert warehouse.scalar("select count(*) from l_staging.items") == 0
    # the state file was copied (append) through the ledger; a completed load leaves no ledger rows
    assert warehouse.scalar("select count(*) from l._dlt_loaded_files") == 0


def test_a_column_missing_from_this_loads_files_reads_as_null(warehouse: Warehouse) -> None:
    """The schema knows ``colour`` from the first load; the second load's files do not have it."""
    run_pipeline(_pipeline(), lambda: _items(pa.table({"id": [1], "colour": ["red"]}), "merge"))
    run_pipeline(_pipeline(), lambda: _items(pa.table({"id": [1, 2]}), "merge"))
    assert warehouse.query("select id, colour from l.items order by id") == [(1, None), (2, None)]
