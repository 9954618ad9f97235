"""The Snowflake path itself, with tiny inline sources: merge, nested tables, VARIANT, parquet files, replace.

These prove the emulator (or a real account, SNOWFLAKE_TESTS=real) handles what the pipelines rely on,
through the production destination settings (``utils.destinations``) and the runner (parquet).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import dlt
import pytest
from dlt.destinations.job_client_impl import SqlLoadJob
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fixtures.snowflake import Snowflake
from tests.snowflake_emulator.recorder import Statement, recorded_statements
from utils.destinations import get_destination
from utils.runner import run_pipeline

pytestmark = pytest.mark.snowflake

DATASET = "sf_proof"


@contextlib.contextmanager
def recording(snowflake: Snowflake) -> Iterator[list[Statement]]:
    """The statements the emulator receives in the block (none recorded against a real account)."""
    if snowflake.mode != "emulator":
        yield []
        return
    with recorded_statements() as statements:
        yield statements


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
    with recording(snowflake) as statements:
        report = run_pipeline(p, lambda: events())
    jobs = p.get_load_package_info(report.load_ids[0]).jobs["completed_jobs"]
    files = [job.job_file_info.file_name() for job in jobs if job.job_file_info.table_name == "events"]
    assert len(files) == 4 and all(f.endswith(".parquet") for f in files)
    assert snowflake.assert_unique(DATASET, "events", "id") == 1000
    stage = f'@"{snowflake.dataset(DATASET)}"."%EVENTS"'
    if snowflake.mode == "real":  # keep_staged_files = false: the table stage is empty again
        assert snowflake.query(f"list {stage}") == []
        return
    # The emulator answers REMOVE without running it (its stage keeps the files), so check what dlt sent:
    # one REMOVE per staged file, after the COPY that read it.
    sql = [s.sql for s in statements]
    for name in files:
        copied = [n for n, text in enumerate(sql) if text.startswith("COPY INTO") and name in text]
        removed = [n for n, text in enumerate(sql) if text.startswith("REMOVE") and name in text]
        assert len(copied) == 1 and len(removed) == 1, (name, copied, removed)
        assert removed[0] > copied[0] and sql[removed[0]].startswith(f"REMOVE '{stage}/")
        assert statements[removed[0]].answered_without_running


def test_an_operator_can_keep_staged_files(snowflake: Snowflake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The REMOVE check above can fail: with keep_staged_files = true dlt sends none."""
    if snowflake.mode == "real":
        pytest.skip("checks the statements the emulator receives")
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__KEEP_STAGED_FILES", "true")
    with recording(snowflake) as statements:
        run_pipeline(pipeline(), lambda: dlt.resource([{"id": 1}], name="kept"))
    assert any(s.sql.startswith("COPY INTO") for s in statements)
    assert not [s.sql for s in statements if s.sql.startswith("REMOVE")]


def test_every_load_session_is_tagged_with_pipeline_table_and_load_id(snowflake: Snowflake) -> None:
    """``query_tag`` (utils/destinations.py) as dlt sends it: ``ALTER SESSION SET QUERY_TAG`` per job.

    The emulator answers it without running it; a real account shows the tags in QUERY_HISTORY.
    """
    if snowflake.mode == "real":
        pytest.skip("checks the statements the emulator receives")
    with recording(snowflake) as statements:
        report = run_pipeline(pipeline(), lambda: deals([deal(1, 1.0, "open", ["a"])], "delete-insert"))
    prefix = "ALTER SESSION SET QUERY_TAG = '"
    tags = [json.loads(s.sql[len(prefix) : -1]) for s in statements if s.sql.startswith(prefix)]
    assert all(s.answered_without_running for s in statements if s.sql.startswith(prefix))
    by_table = {t["table"]: t for t in tags if t["table"]}
    assert {"deals", "deals__lines"} <= set(by_table), tags
    assert by_table["deals"] == {
        "app": "data-pipelines",
        "pipeline": DATASET,
        "source": DATASET,
        "resource": "deals",
        "table": "deals",
        "load_id": report.load_ids[0],
    }


def test_replace_goes_through_the_staging_schema(snowflake: Snowflake) -> None:
    @dlt.resource(name="rates", write_disposition="replace", primary_key="code")
    def rates(n: int) -> Iterator[dict[str, Any]]:
        yield from ({"code": f"C{i}", "rate": i / 10} for i in range(n))

    run_pipeline(pipeline(), lambda: rates(5))
    run_pipeline(pipeline(), lambda: rates(3))
    assert snowflake.assert_unique(DATASET, "rates", "code") == 3
    staging = f"{DATASET}_staging"  # insert-from-staging: loaded there, then swapped in one transaction
    assert "RATES" in snowflake.tables(staging)


def test_a_replace_whose_swap_fails_keeps_the_last_good_rows(
    snowflake: Snowflake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap (TRUNCATE, then INSERT from staging) is one transaction: an INSERT that fails once the
    table is empty rolls the TRUNCATE back, so readers never see the table empty."""

    @dlt.resource(name="rates", write_disposition="replace", primary_key="code")
    def rates(n: int) -> Iterator[dict[str, Any]]:
        yield from ({"code": f"C{i}", "rate": i / 10} for i in range(n))

    run_pipeline(pipeline(), lambda: rates(5))
    swap = SqlLoadJob.run

    def swap_from_a_missing_staging_table(job: SqlLoadJob) -> None:
        staging = job._job_client.sql_client
        with staging.with_staging_dataset():
            staging.execute_sql(f"DROP TABLE {staging.make_qualified_table_name('rates')}")
        swap(job)

    monkeypatch.setattr(SqlLoadJob, "run", swap_from_a_missing_staging_table)
    with pytest.raises(PipelineStepFailed, match=r"(?i)RATES.* does not exist"):
        run_pipeline(pipeline(), lambda: rates(3))
    assert snowflake.count(DATASET, "rates") == 5
