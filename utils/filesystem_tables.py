"""dlt's own tables on the filesystem destination (S3), read file by file.

The freshness check, ``python -m pipelines status`` and the volume and schema checks read
``_dlt_loads`` and ``_pipeline_metrics``. On SQL destinations they ask ``pipeline.sql_client()``; on
the filesystem destination that client attaches a DuckDB secret for the bucket through a call
DuckDB 2 removed, so every query fails. The few files these readers need are small (one per load),
so they are listed with the destination client's ``list_table_files`` and read through its
``fs_client``: ``_dlt_loads`` as JSON lines, everything else as parquet.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import dlt
import pyarrow.parquet as pq


def is_filesystem(pipeline: dlt.Pipeline) -> bool:
    """Whether ``pipeline`` loads into dlt's filesystem destination (files, not a database)."""
    return pipeline.destination is not None and pipeline.destination.destination_name == "filesystem"


def table_rows(pipeline: dlt.Pipeline, table_name: str) -> list[dict[str, Any]]:
    """Every row of ``table_name``: JSON lines for ``.jsonl`` files, parquet otherwise."""
    rows: list[dict[str, Any]] = []
    with pipeline.destination_client() as client:
        try:
            files = client.list_table_files(table_name)  # type: ignore[attr-defined]
        except FileNotFoundError:
            return []
        fs = client.fs_client  # type: ignore[attr-defined]
        for path in files:
            with fs.open(path, "rb") as handle:
                if PurePosixPath(path).suffix == ".jsonl":
                    rows += [json.loads(line) for line in handle.read().decode().splitlines() if line.strip()]
                else:
                    rows += pq.read_table(handle).to_pylist()
    return rows


def rows_in_files(pipeline: dlt.Pipeline, table_name: str, load_id: str) -> int:
    """Rows the load ``load_id`` wrote into ``table_name`` (the load id is in each file's name)."""
    total = 0
    with pipeline.destination_client() as client:
        try:
            files = client.list_table_files(table_name)  # type: ignore[attr-defined]
        except FileNotFoundError:
            return 0
        fs = client.fs_client  # type: ignore[attr-defined]
        for path in files:
            if PurePosixPath(path).name.startswith(f"{load_id}."):
                with fs.open(path, "rb") as handle:
                    total += pq.ParquetFile(handle).metadata.num_rows
    return total
