"""The runner's file format: parquet by default, a resource's own ``file_format`` hint kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt

from tests.fixtures.warehouse import Warehouse
from utils.destinations import get_destination
from utils.runner import run_pipeline


@dlt.source(name="formats")
def formats() -> Any:
    @dlt.resource(write_disposition="replace")
    def plain() -> Iterator[dict[str, Any]]:
        yield {"id": 1}

    @dlt.resource(write_disposition="replace", file_format="jsonl")
    def documents() -> Iterator[dict[str, Any]]:
        yield {"id": 1, "doc": {"a": [1, 2]}}

    return plain, documents


def test_parquet_unless_a_resource_asks_for_its_own_format(warehouse: Warehouse) -> None:
    pipeline = dlt.pipeline(pipeline_name="formats", destination=get_destination("duckdb"), dataset_name="f")
    report = run_pipeline(pipeline, formats)
    jobs = pipeline.get_load_package_info(report.load_ids[0]).jobs["completed_jobs"]
    # replace loads through staging: each table also has a followup `sql` job (the swap); skip those
    used = {
        j.job_file_info.table_name: j.job_file_info.file_format
        for j in jobs
        if j.job_file_info.file_format != "sql"
    }
    assert used["plain"] == "parquet" and used["documents"] == "jsonl"
    assert warehouse.scalar("select count(*) from f.documents") == 1
