"""The Snowflake path itself, with tiny inline sources: merge, nested tables, VARIANT, parquet files, replace.

These prove the emulator (or a real account, SNOWFLAKE_TESTS=real) handles what the pipelines rely on,
through the production destination settings (``utils.destinations``) and the runner (parquet).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
import pytest

from tests.fixtures.snowflake import Snowflake
from utils.destinations import get_destination
from utils.runner import run_pipeline

pytestmark = pytest.mark.snowflake

DATASET = "sf_proof"


def pipeline() -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name=DATASET, destination=get_destination("snowflake"), dataset_name=DATASET)


def deals(rows: list[dict[str, Any]], strategy: Any, file_format: Any = None) -> Any:
    @dlt.resource(
        name="deals",
        primary_key="id",
        write_disposition={"disposition": "merge", "strategy": strategy},
        columns={"properties": {"data_type": "json"}},
        file_format=file_format,
    )
    def resource() -> Iterator[dict[str, Any]]:
        yield from rows

    return resource


def deal(id_: int, amount: float, stage: str, lines: list[str]) -> dict[str, Any]:
    return {
        "id": id_,
        "amount": amount,
        "properties": {"stage": stage, "tags": ["b2b", stage]},  # VARIANT
        "lines": [{"sku": sku, "qty": n + 1} for n, sku in enumerate(lines)],  # nested table DEALS__LINES
    }


@pytest.mark.parametrize("strategy", ["delete-insert", "upsert"])
def test_merge_updates_rows_and_their_nested_rows(snowflake: Snowflake, strategy: str) -> None:
    first = [deal(1, 10.0, "open", ["a", "b"]), deal(2, 20.0, "open", ["c"])]
    run_pipeline(pipeline(), lambda: deals(first, strategy))
    second = [deal(2, 25.5, "won", ["c", "d", "e"]), deal(3, 30.0, "open", [])]
    report = run_pipeline(pipeline(), lambda: deals(second, strategy))

    assert report.rows_by_table == {"deals": 2, "deals__lines": 3}
    assert snowflake.assert_unique(DATASET, "deals", "id") == 3
    deals_table, lines_table = snowflake.table(DATASET, "deals"), snowflake.table(DATASET, "deals__lines")
    assert snowflake.query(f"select id, amount from {deals_table} order by id") == [
        (1, 10),
        (2, 25.5),
        (3, 30),
    ]
    lines = snowflake.query(
        f"select d.id, l.sku from {lines_table} l join {deals_table} d on l._dlt_parent_id = d._dlt_id"
        " order by 1, 2"
    )
    assert lines == [(1, "a"), (1, "b"), (2, "c"), (2, "d"), (2, "e")]  # deal 2's old line replaced
    assert snowflake.assert_unique(DATASET, "deals__lines", "_dlt_id") == 5


def test_json_columns_are_variant_and_nested_lists_child_tables(snowflake: Snowflake) -> None:
    p = pipeline()  # jsonl: the file format that keeps JSON an object in a VARIANT (parquet: a string)
    report = run_pipeline(p, lambda: deals([deal(7, 1.0, "open", ["x"])], "delete-insert", "jsonl"))
    jobs = p.get_load_package_info(report.load_ids[0]).jobs["completed_jobs"]
    loaded = {j.job_file_info.file_format for j in jobs if j.job_file_info.table_name.startswith("deals")}
    assert loaded == {"jsonl", "sql"}  # data files, then the merge statements
    columns = snowflake.columns(DATASET, "deals")
    assert columns["PROPERTIES"] == "VARIANT" and columns["AMOUNT"] == "FLOAT"
    assert "LINES" not in columns and "DEALS__LINES" in snowflake.tables(DATASET)
    child = snowflake.columns(DATASET, "deals__lines")
    assert child["SKU"] == "TEXT" and child["QTY"] == "NUMBER" and "_DLT_PARENT_ID" in child
    table = snowflake.table(DATASET, "deals")
    assert snowflake.query(f"select properties:stage::string, properties:tags[1]::string from {table}") == [
        ("open", "open")
    ]


def test_large_loads_reach_snowflake_as_several_parquet_files(
    snowflake: Snowflake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS", "250")  # production: 500,000 rows

    @dlt.resource(name="events", write_disposition="append")
    def events() -> Iterator[list[dict[str, Any]]]:
        yield [{"id": n, "kind": "click" if n % 3 else "view"} for n in range(1000)]

    p = pipeline()
    report = run_pipeline(p, lambda: events())
    jobs = p.get_load_package_info(report.load_ids[0]).jobs["completed_jobs"]
    files = [job.job_file_info.file_name() for job in jobs if job.job_file_info.table_name == "events"]
    assert len(files) == 4 and all(f.endswith(".parquet") for f in files)
    assert snowflake.assert_unique(DATASET, "events", "id") == 1000
    if snowflake.mode == "emulator":  # REMOVE is a no-op there, so the stage still shows what COPY read
        staged = snowflake.query(f'list @"{snowflake.dataset(DATASET)}"."%EVENTS"')
        assert len(staged) == 4 and all(row[0].endswith(".parquet") for row in staged)


def test_replace_goes_through_the_staging_schema(snowflake: Snowflake) -> None:
    @dlt.resource(name="rates", write_disposition="replace", primary_key="code")
    def rates(n: int) -> Iterator[dict[str, Any]]:
        yield from ({"code": f"C{i}", "rate": i / 10} for i in range(n))

    run_pipeline(pipeline(), lambda: rates(5))
    run_pipeline(pipeline(), lambda: rates(3))
    assert snowflake.assert_unique(DATASET, "rates", "code") == 3
    staging = f"{DATASET}_staging"  # insert-from-staging: loaded there, then swapped in one transaction
    assert "RATES" in snowflake.tables(staging)
