"""DuckDB as dlt's destination, with every file loaded exactly once even when a run is killed mid-load.

dlt records a load job as done (a file move in the load package) just *after* DuckDB has committed the
job's ``INSERT``. A process killed in that instant leaves the job "started"; the next run re-runs it and
the file's rows are inserted a second time - into the table itself (append), or into the staging table,
which dlt's replace (insert-from-staging) and merge SQL then copy (dlt's merge deduplicates a root
table with nested tables by ``_dlt_id``, which both copies share; a source declared ``deduplicated``
is not deduplicated at all). Seen as "contacts: an id was loaded twice" after a SIGKILL mid-load.

Here each file load also writes its job id to a small ledger table (``_dlt_loaded_files``, beside the
table it loads: the dataset or its staging dataset) in the same transaction, and a re-run whose job id
is already there skips the file. The ledger rows of a load are deleted when the load completes.
Snowflake should need none of this: its COPY skips a staged file it has already loaded (load
metadata; dlt's COPY does not use ``FORCE``). That is not tested here (docs/reliability.md).

Parquet files bound for the staging dataset (merge, and replace through staging) are not copied into
the staging table at all: their jobs complete at once, and the merge or replace SQL that dlt then
runs in one transaction reads the files where it would read the staging table. Every row is then
written to DuckDB once instead of twice (staging, then the table), and a killed run has committed
nothing for those files, so they need no ledger. The files stay in the load package until the load
completes, so a resumed load reads them again.

This module extends dlt's DuckDB client, which dlt does not export (``dlt.destinations.impl``), and
rewrites the SQL dlt generates; both may change in any dlt release. Each dependency is checked where
it is used and fails the load with :class:`UpstreamChangedError` rather than loading wrong data
(docs/internals.md lists them).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from dlt.common.destination.capabilities import DestinationCapabilitiesContext
from dlt.common.destination.client import (
    FollowupJobRequest,
    JobClientBase,
    LoadJob,
    PreparedTableSchema,
    RunnableLoadJob,
)
from dlt.common.destination.reference import Destination, DestinationReference
from dlt.common.schema import Schema
from dlt.common.storages.load_package import LoadJobInfo, ParsedLoadJobFileName
from dlt.destinations import duckdb
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.impl.duckdb.duck import DuckDbClient, DuckDbCopyJob  # not exported: see the checks
from dlt.destinations.job_impl import FinalizedLoadJobWithFollowupJobs

logger = logging.getLogger("data_pipelines.duckdb_loads")

LEDGER: Final = "_dlt_loaded_files"
"""Job ids of the files loaded by loads that have not completed yet (one table per dataset)."""
_CREATING = threading.Lock()
"""dlt runs jobs in threads; DuckDB fails concurrent ``CREATE TABLE`` of one table as a conflict."""
COPIED_FORMATS: Final = frozenset(("parquet", "jsonl", "typed-jsonl"))
"""The file formats dlt's DuckDB client loads with its copy job (``DuckDbCopyJob``)."""


class UpstreamChangedError(RuntimeError):
    """dlt no longer behaves as this module relies on; the load stops before it writes anything wrong."""


def check_dlt() -> None:
    """Raise :class:`UpstreamChangedError` naming what this dlt release changed of what is used here.

    Run at import: dlt's DuckDB copy job must still be a runnable load job whose loader hands it the
    load id and client through ``set_run_vars`` and ``run_managed``, and destinations must still take
    their capabilities from ``_raw_capabilities`` (else ``supports_transactions`` would silently stay
    unset). A renamed ``create_load_job`` result and the generated SQL are checked where used.
    """
    changed = []
    if not issubclass(DuckDbCopyJob, RunnableLoadJob):
        changed.append("DuckDbCopyJob is no longer a RunnableLoadJob")
    for method, first in (("set_run_vars", "load_id"), ("run_managed", "job_client")):
        parameters = list(inspect.signature(getattr(RunnableLoadJob, method, lambda self: None)).parameters)
        if parameters[1:2] != [first]:
            changed.append(f"RunnableLoadJob.{method} no longer takes {first} first ({parameters})")
    if not callable(getattr(Destination, "_raw_capabilities", None)):
        changed.append("Destination._raw_capabilities is gone")
    if changed:
        raise UpstreamChangedError(
            "utils/duckdb_loads.py needs adapting to this dlt release (docs/internals.md): "
            + "; ".join(changed)
        )


def _create_ledger(sql_client: Any) -> str:
    ledger = sql_client.make_qualified_table_name(LEDGER)
    with _CREATING:
        sql_client.execute_sql(
            f"CREATE TABLE IF NOT EXISTS {ledger} (load_id VARCHAR NOT NULL, job_id VARCHAR NOT NULL,"
            " loaded_at TIMESTAMP WITH TIME ZONE NOT NULL)"
        )
    return ledger


class ExactlyOnceCopyJob(DuckDbCopyJob):
    """dlt's DuckDB file load, and its ledger row, in one transaction; skipped when already done.

    The load id and the job client come from the loader's public calls (``set_run_vars``,
    ``run_managed``), not from the job's private attributes."""

    load_id: str = ""
    job_client: Any = None

    def set_run_vars(
        self, load_id: str, schema: Schema, load_table: PreparedTableSchema, *args: Any, **kwargs: Any
    ) -> None:
        self.load_id = load_id
        super().set_run_vars(load_id, schema, load_table, *args, **kwargs)

    def run_managed(self, job_client: JobClientBase, *args: Any) -> None:
        self.job_client = job_client
        super().run_managed(job_client, *args)

    def run(self) -> None:
        if not self.load_id or self.job_client is None:
            raise UpstreamChangedError(
                f"dlt ran load job {self.file_name()} without set_run_vars/run_managed giving its load id"
                " and client; the exactly-once ledger cannot work (utils/duckdb_loads.py, docs/internals.md)"
            )
        sql_client = self.job_client.sql_client
        ledger = _create_ledger(sql_client)
        job_id = self.job_id()  # without the retry count: a retried file is the same file
        with sql_client.begin_transaction():
            done = sql_client.execute_sql(
                f"SELECT 1 FROM {ledger} WHERE load_id = %s AND job_id = %s", self.load_id, job_id
            )
            if done:
                logger.warning(
                    "%s of load %s was loaded before the last run stopped; not loading it again",
                    job_id,
                    self.load_id,
                )
                return
            super().run()
            sql_client.execute_sql(f"INSERT INTO {ledger} VALUES (%s, %s, now())", self.load_id, job_id)


class ExactlyOnceDuckDbClient(DuckDbClient):
    """dlt's DuckDB client with :class:`ExactlyOnceCopyJob` file loads."""

    def create_load_job(
        self, table: PreparedTableSchema, file_path: str, load_id: str, restore: bool = False
    ) -> LoadJob:
        job = super().create_load_job(table, file_path, load_id, restore)
        if ParsedLoadJobFileName.parse(file_path).file_format not in COPIED_FORMATS:
            return job  # SQL jobs (merge, replace) and insert_values: dlt's own
        if type(job) is not DuckDbCopyJob:
            raise UpstreamChangedError(
                f"dlt's DuckDB client answered {Path(file_path).name} with {type(job).__qualname__}, not"
                " DuckDbCopyJob: loading it without the exactly-once ledger could load it twice. Adapt"
                " utils/duckdb_loads.py to this dlt release (docs/internals.md)."
            )
        if self._read_at_followup(str(table["name"]), file_path):
            return FinalizedLoadJobWithFollowupJobs(file_path)  # read by the merge or replace SQL instead
        return ExactlyOnceCopyJob(file_path)

    def _read_at_followup(self, table_name: str, file_path: str) -> bool:
        return file_path.endswith(".parquet") and self.should_load_data_to_staging_dataset(table_name)

    def create_table_chain_completed_followup_jobs(
        self,
        table_chain: Sequence[PreparedTableSchema],
        completed_table_chain_jobs: Sequence[LoadJobInfo] | None = None,
    ) -> list[FollowupJobRequest]:
        jobs = super().create_table_chain_completed_followup_jobs(table_chain, completed_table_chain_jobs)
        reads = self._staged_file_reads(table_chain, completed_table_chain_jobs or ())
        if not reads:
            return jobs
        sql_files = [Path(job.new_file_path()) for job in jobs]
        substitute_staging_reads([f for f in sql_files if f.suffix == ".sql"], reads)
        return jobs

    def _staged_file_reads(
        self, table_chain: Sequence[PreparedTableSchema], completed: Sequence[LoadJobInfo]
    ) -> dict[str, str]:
        """Each staging table whose files were not copied -> that (empty) table and its files, by
        column name: the table's columns and types, NULL where no file has a column."""
        reads = {}
        for table_name in (str(table["name"]) for table in table_chain):
            files = [
                job.file_path
                for job in completed
                if job.job_file_info.table_name == table_name
                and self._read_at_followup(table_name, job.file_path)
            ]
            if files:
                with self.sql_client.with_staging_dataset():
                    staging_table = self.sql_client.make_qualified_table_name(table_name)
                paths = ", ".join("'" + path.replace("'", "''") + "'" for path in files)
                reads[staging_table] = (
                    f"(SELECT * FROM {staging_table} UNION ALL BY NAME"
                    f" SELECT * FROM read_parquet([{paths}], union_by_name = true))"
                )
        return reads

    def complete_load(self, load_id: str) -> None:
        super().complete_load(load_id)
        # every job of the load is done: its ledger rows are no longer needed
        for staging in (False, True):
            scope = self.sql_client.with_staging_dataset() if staging else contextlib.nullcontext()
            with scope, contextlib.suppress(DatabaseUndefinedRelation):
                ledger = self.sql_client.make_qualified_table_name(LEDGER)
                self.sql_client.execute_sql(f"DELETE FROM {ledger} WHERE load_id = %s", load_id)


def substitute_staging_reads(sql_files: Sequence[Path], reads: dict[str, str]) -> None:
    """Rewrite ``sql_files`` so that each staging table named in ``reads`` is read from its files.

    Raises :class:`UpstreamChangedError`, before any SQL runs and with the files unchanged, when a
    staging table is named in none of the files: the SQL would read the empty staging table, emptying a
    replaced table or merging nothing while the cursor moves on (a dlt release that quotes or qualifies
    names differently would do that).
    """
    pattern = re.compile("|".join(re.escape(name) for name in reads))
    found: Counter[str] = Counter()

    def read(match: re.Match[str]) -> str:
        found[match[0]] += 1
        return reads[match[0]]

    rewritten = {path: pattern.sub(read, path.read_text(encoding="utf-8")) for path in sql_files}
    if missing := [name for name in reads if not found[name]]:
        sql = "\n".join(path.read_text(encoding="utf-8") for path in sql_files)
        raise UpstreamChangedError(
            f"staging table(s) {', '.join(missing)} not found in the SQL dlt generated for this merge or"
            f" replace, so its files would not be read; nothing was run. SQL: {_excerpt(sql, missing)}"
            " - adapt utils/duckdb_loads.py to this dlt release (docs/internals.md)."
        )
    for path, sql in rewritten.items():
        path.write_text(sql, encoding="utf-8")


def _excerpt(sql: str, names: list[str], limit: int = 600) -> str:
    """The SQL lines that mention the tables' bare names (all of it if none does), cut to ``limit``."""
    bare = {name.rsplit(".", 1)[-1].strip('"').lower() for name in names}
    lines = [line.strip() for line in sql.splitlines() if any(n in line.lower() for n in bare)]
    text = " | ".join(lines) if lines else sql.strip()
    return text if len(text) <= limit else text[:limit] + " ..."


class exactly_once_duckdb(duckdb):
    """dlt's ``duckdb`` destination (same type, name and configuration) loading each file once."""

    @property
    def destination_type(self) -> str:
        return DestinationReference.normalize_type("duckdb")  # "dlt.destinations.duckdb"

    @property
    def client_class(self) -> type[DuckDbClient]:
        return ExactlyOnceDuckDbClient

    def _raw_capabilities(self) -> DestinationCapabilitiesContext:
        caps = super()._raw_capabilities()
        # dlt runs a merge or replace job's SQL in a transaction only when the destination says it
        # supports transactions or the SQL holds DDL; DuckDB's capabilities leave the first unset, so
        # "DELETE ...; INSERT ..." ran statement by statement and a failed INSERT left the table empty
        caps.supports_transactions = True
        return caps


check_dlt()
