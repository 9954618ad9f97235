"""DuckDB loads: parquet bound for staging is read by the merge or replace SQL, written once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pytest
from dlt.common.destination.client import RunnableLoadJob
from dlt.common.destination.reference import Destination
from dlt.common.schema.typing import TWriteDisposition
from dlt.destinations.sql_jobs import SqlMergeFollowupJob, SqlStagingReplaceFollowupJob
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fixtures.warehouse import Warehouse
from utils import duckdb_loads
from utils.destinations import get_destination
from utils.duckdb_loads import UpstreamChangedError, substitute_staging_reads
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


@pytest.mark.parametrize("write_disposition", ["merge", "replace"])
def test_sql_naming_staging_tables_differently_stops_the_load_before_it_runs(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch, write_disposition: TWriteDisposition
) -> None:
    """A dlt release that writes the staging table another way (here unquoted) must not read the empty
    staging table: that would empty a replaced table, or merge nothing while the cursor moves on."""
    first = pa.table({"id": [1, 2], "name": ["a", "b"]})
    run_pipeline(_pipeline(), lambda: _items(first, write_disposition))

    job_class = SqlMergeFollowupJob if write_disposition == "merge" else SqlStagingReplaceFollowupJob
    generate_sql = job_class.generate_sql

    def unquoted(cls: Any, table_chain: Any, sql_client: Any) -> list[str]:
        return [sql.replace('"l_staging".', "l_staging.") for sql in generate_sql(table_chain, sql_client)]

    monkeypatch.setattr(job_class, "generate_sql", classmethod(unquoted))
    pipeline = _pipeline()
    with pytest.raises(PipelineStepFailed) as failed:
        run_pipeline(pipeline, lambda: _items(pa.table({"id": [3], "name": ["c"]}), write_disposition))

    message = str(failed.value)
    assert 'staging table(s) "l_staging"."items" not found' in message
    assert 'FROM l_staging."items"' in message  # the SQL fragment as dlt wrote it
    assert warehouse.query("select id, name from l.items order by id") == [(1, "a"), (2, "b")]
    assert pipeline.list_normalized_load_packages()  # kept to load again once the module is adapted


def test_substitution_counts_every_staging_table(tmp_path: Path) -> None:
    sql = tmp_path / "merge.sql"
    sql.write_text('INSERT INTO "d"."t" SELECT * FROM "d_staging"."t";\n', encoding="utf-8")
    reads = {'"d_staging"."t"': "(read t)", '"d_staging"."t__child"': "(read child)"}
    with pytest.raises(UpstreamChangedError, match=r'"d_staging"."t__child" not found'):
        substitute_staging_reads([sql], reads)
    assert "read" not in sql.read_text(encoding="utf-8")  # nothing half-rewritten

    substitute_staging_reads([sql], {'"d_staging"."t"': "(read t)"})
    assert sql.read_text(encoding="utf-8") == 'INSERT INTO "d"."t" SELECT * FROM (read t);\n'


def test_a_changed_copy_job_class_stops_the_load_instead_of_loading_without_the_ledger(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should dlt answer a parquet file with another job class, the ledger must not quietly switch off."""

    class RenamedCopyJob(duckdb_loads.DuckDbCopyJob):
        pass

    monkeypatch.setattr(duckdb_loads, "DuckDbCopyJob", RenamedCopyJob)  # dlt's job is no longer "the" class
    with pytest.raises(PipelineStepFailed, match="not DuckDbCopyJob"):
        run_pipeline(_pipeline(), lambda: _items(pa.table({"id": [1], "name": ["a"]}), "append"))
    assert warehouse.scalar("select count(*) from l.items") == 0  # created by the schema step, not loaded


def test_the_dlt_internals_the_loads_rely_on_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """This dlt release passes; one whose loader hands jobs their load id another way stops at import."""
    duckdb_loads.check_dlt()

    def set_run_vars(self: Any, schema: Any, load_id: str, load_table: Any) -> None: ...

    monkeypatch.setattr(RunnableLoadJob, "set_run_vars", set_run_vars)
    monkeypatch.delattr(Destination, "_raw_capabilities")
    with pytest.raises(UpstreamChangedError) as changed:
        duckdb_loads.check_dlt()
    assert "RunnableLoadJob.set_run_vars no longer takes load_id first" in str(changed.value)
    assert "Destination._raw_capabilities is gone" in str(changed.value)
