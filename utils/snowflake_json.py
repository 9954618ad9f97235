"""Snowflake as dlt's destination, with JSON loaded from parquet landing as VARIANT objects, not strings.

dlt loads a parquet file into Snowflake with ``COPY ... MATCH_BY_COLUMN_NAME``, which stores the JSON
*text* of a ``json`` column in its ``VARIANT`` as a string (dlt's Snowflake documentation says so), so
``attributes:colour`` answers NULL. A ``COPY`` cannot parse it on the way in: Snowflake refuses a
transforming ``SELECT`` together with ``MATCH_BY_COLUMN_NAME`` (behaviour change 1514).

For a table hinted ``PARSE_JSON_HINT`` (``utils/destinations.py``), the route is this. Merge and
replace load a table's files into its staging table first, then dlt's SQL copies the rows
into the table in one transaction (``transactional_snowflake``). Here that SQL reads the staging
table through a ``SELECT`` that parses each ``json`` column whose value is a string:
``PARSE_JSON(AS_VARCHAR(col), 'd')`` (duplicate keys as PostgreSQL's ``json`` allows, the last one
kept), with ``STRIP_NULL_VALUE`` so that a JSON ``null`` lands as SQL NULL. The staging table itself
is never changed, so a merge or replace that runs again after a crash parses the same text again and
writes the same rows. Values that are not strings (an object from a ``jsonl`` file, say) pass as
they are, and only tables whose files in this load are all parquet are read this way.

An append has no SQL after ``COPY``: an append table with ``json`` columns loaded from parquet keeps
them as strings, and a warning names it (load it with merge, or as ``jsonl``). docs/snowflake.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from dlt.common.destination.client import FollowupJobRequest, PreparedTableSchema
from dlt.common.schema.utils import get_columns_names_with_prop
from dlt.common.storages.load_package import LoadJobInfo
from dlt.destinations.impl.snowflake.snowflake import SnowflakeClient

from utils.destinations import PARSE_JSON_HINT

logger = logging.getLogger("data_pipelines.snowflake_json")

PARSED_FORMAT: Final = "parquet"
"""The file format whose ``json`` columns arrive in the staging table as JSON text."""


WRITES_ROWS: Final = ("INSERT", "MERGE")
"""The statements that copy staged rows into the table: dlt's merge and replace ``INSERT ... SELECT``,
and the ``MERGE`` of its upsert strategies."""


class JsonFromParquetError(RuntimeError):
    """A table's ``json`` columns cannot be parsed from this load's files; the message says why."""


def parsed_column(column: str) -> str:
    """The select-list entry turning ``column`` (escaped) from JSON text into its VARIANT value."""
    text = f"AS_VARCHAR({column})"
    return (
        f"CASE WHEN {text} IS NULL THEN {column} ELSE STRIP_NULL_VALUE(PARSE_JSON({text}, 'd')) END"
        f" AS {column}"
    )


class JsonParsingSnowflakeClient(SnowflakeClient):
    """dlt's Snowflake client whose merge and replace SQL parses JSON text staged from parquet (tables
    hinted ``PARSE_JSON_HINT``)."""

    def create_table_chain_completed_followup_jobs(
        self,
        table_chain: Sequence[PreparedTableSchema],
        completed_table_chain_jobs: Sequence[LoadJobInfo] | None = None,
    ) -> list[FollowupJobRequest]:
        jobs = list(
            super().create_table_chain_completed_followup_jobs(table_chain, completed_table_chain_jobs)
        )
        reads = self._parsed_reads(table_chain, completed_table_chain_jobs or ())
        if not reads:
            return jobs
        staging_tables = re.compile("|".join(re.escape(name) for name in reads))
        read: set[str] = set()
        for sql_file in (Path(job.new_file_path()) for job in jobs):
            if sql_file.suffix != ".sql":
                continue
            statements = sql_file.read_text(encoding="utf-8").split("\n")  # dlt writes one per line
            for i, statement in enumerate(statements):
                if statement.lstrip().upper().startswith(WRITES_ROWS):  # a DELETE needs only the keys
                    read.update(found[0] for found in staging_tables.finditer(statement))
                    statements[i] = staging_tables.sub(lambda found: reads[found[0]], statement)
            sql_file.write_text("\n".join(statements), encoding="utf-8")
        if unread := sorted(set(reads) - read):
            raise JsonFromParquetError(
                f"{', '.join(unread)}: the JSON columns staged from parquet are not read by any SQL after"
                " COPY, so they would land as VARIANT strings; use merge (delete-insert) or replace"
                " (insert-from-staging), or load the table as jsonl (docs/snowflake.md)"
            )
        return jobs

    def _parsed_reads(
        self, table_chain: Sequence[PreparedTableSchema], completed: Sequence[LoadJobInfo]
    ) -> dict[str, str]:
        """Each staging table holding JSON text from parquet -> a ``SELECT`` of it with the JSON
        parsed; append tables in the same state are only warned about (nothing reads them after COPY)."""
        reads = {}
        for table in table_chain:
            name = str(table["name"])
            if not table.get(PARSE_JSON_HINT):
                continue
            json_columns = {c for c, col in table["columns"].items() if col.get("data_type") == "json"}
            formats = {
                job.job_file_info.file_format for job in completed if job.job_file_info.table_name == name
            }
            if not json_columns or PARSED_FORMAT not in formats:
                continue
            if formats != {PARSED_FORMAT}:
                raise JsonFromParquetError(
                    f"table {name}: one load holds its rows as {' and '.join(sorted(formats))}; JSON text"
                    " from parquet and JSON values from other files cannot be told apart in one staging table"
                )
            if not self.should_load_data_to_staging_dataset(name):
                logger.warning(
                    "table %s: JSON columns %s are loaded from parquet without staging (append), so they"
                    " land as VARIANT strings; load the table with merge, or as jsonl (docs/snowflake.md)",
                    name,
                    ", ".join(sorted(json_columns)),
                )
                continue
            escape = self.sql_client.escape_column_name
            columns = ", ".join(
                parsed_column(escape(column)) if column in json_columns else escape(column)
                for column in get_columns_names_with_prop(table, "name")  # type: ignore[arg-type]
            )
            with self.sql_client.with_staging_dataset():
                staging_table = self.sql_client.make_qualified_table_name(name)
            reads[staging_table] = f"(SELECT {columns} FROM {staging_table})"
        return reads
