"""JSON text staged from parquet lands as VARIANT objects on Snowflake (``utils/snowflake_json.py``):
merge and replace of a table hinted ``PARSE_JSON_HINT`` parse it; without the hint, or on append,
dlt's documented behaviour stays (a VARIANT string). Emulator, or a real account (SNOWFLAKE_TESTS=real)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import dlt
import pyarrow as pa
import pytest

from tests.fixtures.snowflake import Snowflake
from tests.utils.test_snowflake import recording
from utils.destinations import PARSE_JSON_HINT, get_destination
from utils.runner import run_pipeline

pytestmark = pytest.mark.snowflake

DATASET = "sf_json"
LOOKS_LIKE_AN_OBJECT = '{"not": "parsed twice"}'
DOCUMENTS: dict[int, str | None] = {
    1: '{"colour": "red", "nested": {"ok": true}, "sizes": [3, 4]}',
    2: '["a", "b"]',
    3: json.dumps(LOOKS_LIKE_AN_OBJECT),  # a JSON string whose text looks like an object
    4: None,
    5: "null",  # JSON null
}


def documents(disposition: str, hinted: bool, rows: dict[int, str | None] = DOCUMENTS) -> Any:
    """Rows as the products source hands them over: Arrow, JSON as its text."""

    @dlt.resource(name="documents", primary_key="id", write_disposition=disposition)  # type: ignore[call-overload]
    def resource() -> Iterator[pa.Table]:
        yield pa.table({"id": list(rows), "doc": list(rows.values())})

    resource.apply_hints(
        columns={"doc": {"data_type": "json", "nullable": True}},
        additional_table_hints={PARSE_JSON_HINT: hinted},
    )
    return resource


def load(resource: Any) -> None:
    pipeline = dlt.pipeline(
        pipeline_name=DATASET, destination=get_destination("snowflake"), dataset_name=DATASET
    )
    report = run_pipeline(pipeline, lambda: resource)
    package = pipeline.get_load_package_info(report.load_ids[-1])
    formats = {j.job_file_info.file_format for j in package.jobs["completed_jobs"]}
    assert "parquet" in formats, "the rows travelled as parquet, as the runner makes them"


@pytest.mark.parametrize("disposition", ["merge", "replace"])
def test_merge_and_replace_parse_json_text_into_variant_objects(
    snowflake: Snowflake, disposition: str
) -> None:
    with recording(snowflake) as statements:
        load(documents(disposition, hinted=True))
    table = snowflake.table(DATASET, "documents")
    assert snowflake.scalar(f"select doc:colour::string from {table} where id = 1") == "red"
    assert snowflake.scalar(f"select doc:nested.ok::boolean from {table} where id = 1") is True
    assert snowflake.scalar(f"select doc:sizes[1]::int from {table} where id = 1") == 4
    assert snowflake.scalar(f"select doc[1]::string from {table} where id = 2") == "b"
    # a JSON string stays that string: parsed once, never twice
    assert snowflake.scalar(f"select as_varchar(doc) from {table} where id = 3") == LOOKS_LIKE_AN_OBJECT
    assert snowflake.scalar(f'select doc:"not"::string from {table} where id = 3') is None
    assert snowflake.scalar(f"select count(*) from {table} where id in (4, 5) and doc is null") == 2
    # the staging table is only read (nothing UPDATEs it): SQL run again after a crash parses the same
    # text again; the INSERT into the table reads it through PARSE_JSON
    assert not [st.sql for st in statements if st.sql.startswith("UPDATE")]
    inserts = [st.sql for st in statements if st.sql.startswith('INSERT INTO "SF_JSON"."DOCUMENTS"')]
    assert snowflake.mode == "real" or (inserts and all("PARSE_JSON(AS_VARCHAR(" in sql for sql in inserts))
    # and a second load of changed rows parses them too
    load(documents(disposition, hinted=True, rows={1: '{"colour": "blue"}'}))
    assert snowflake.scalar(f"select doc:colour::string from {table} where id = 1") == "blue"


def test_without_the_hint_json_text_stays_a_variant_string(snowflake: Snowflake) -> None:
    """dlt's documented behaviour for parquet, which the emulator reproduces (patch 5)."""
    load(documents("merge", hinted=False))
    table = snowflake.table(DATASET, "documents")
    assert snowflake.scalar(f"select doc:colour::string from {table} where id = 1") is None
    assert "colour" in snowflake.scalar(f"select doc::string from {table} where id = 1")


def test_append_cannot_parse_and_says_so(snowflake: Snowflake, caplog: pytest.LogCaptureFixture) -> None:
    """An append has no SQL after COPY to parse in: the JSON stays text, and a warning names the table."""
    with caplog.at_level(logging.WARNING, logger="data_pipelines.snowflake_json"):
        load(documents("append", hinted=True))
    assert any("table documents: JSON columns doc" in r.getMessage() for r in caplog.records)
    table = snowflake.table(DATASET, "documents")
    assert snowflake.scalar(f"select count(*) from {table}") == len(DOCUMENTS)
    assert snowflake.scalar(f"select doc:colour::string from {table} where id = 1") is None


def json_lines(rows: list[dict[str, Any]], name: str = "documents") -> Any:
    """Rows as Python objects loaded as JSON lines (VARIANT objects from the start), the old route."""

    @dlt.resource(
        name=name, table_name="documents", primary_key="id", write_disposition="merge", file_format="jsonl"
    )
    def resource() -> Iterator[dict[str, Any]]:
        yield from rows

    # as the JSON-row route declared them: nullable, so jsonl and Arrow rows share the table
    lineage = {name: {"data_type": "text", "nullable": True} for name in ("_dlt_load_id", "_dlt_id")}
    resource.apply_hints(columns={"doc": {"data_type": "json", "nullable": True}, **lineage})  # type: ignore[dict-item]
    return resource


def test_a_table_loaded_as_json_lines_switches_to_parsed_parquet(snowflake: Snowflake) -> None:
    """Rows loaded earlier as jsonl keep their objects; rows merged since from parquet are parsed."""
    pipeline = dlt.pipeline(
        pipeline_name=DATASET, destination=get_destination("snowflake"), dataset_name=DATASET
    )
    run_pipeline(
        pipeline, lambda: json_lines([{"id": 1, "doc": {"colour": "red"}}, {"id": 2, "doc": ["red"]}])
    )
    # the table keeps jsonl as its file format hint: a source switching to parquet says so
    load(documents("merge", hinted=True, rows={3: '{"colour": "blue"}'}).apply_hints(file_format="parquet"))
    table = snowflake.table(DATASET, "documents")
    colours = dict(snowflake.query(f"select id, doc:colour::string from {table} order by id"))
    assert colours == {1: "red", 2: None, 3: "blue"}
    assert snowflake.scalar(f"select doc[0]::string from {table} where id = 2") == "red"  # not re-parsed
