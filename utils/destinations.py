"""The single place that turns ``DLT__DESTINATION`` into a dlt destination.

Every pipeline asks :func:`get_destination` for its destination, passing the one it uses in production
(Snowflake for most, the S3 filesystem destination for exchange_rates). ``DLT__DESTINATION`` overrides
that choice for every pipeline at once, which is how a laptop runs everything on DuckDB::

    DLT__DESTINATION=duckdb uv run python -m pipelines.currencies

DuckDB writes to the file named by dlt's own ``DESTINATION__DUCKDB__CREDENTIALS`` when it is set, and
otherwise to one git-ignored local warehouse file, so that every dataset lands side by side in it, the
way schemas sit side by side in the Snowflake ``RAW`` database.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Literal

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.capabilities import DestinationCapabilitiesContext
from dlt.common.destination.reference import DestinationReference
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from utils.duckdb_loads import exactly_once_duckdb

DestinationName = Literal["snowflake", "duckdb", "filesystem"]

DESTINATION_ENV: Final = "DLT__DESTINATION"
SUPPORTED_DESTINATIONS: Final[tuple[DestinationName, ...]] = ("snowflake", "duckdb", "filesystem")
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
LOCAL_WAREHOUSE: Final = REPO_ROOT / "_warehouse" / "local.duckdb"
"""Default DuckDB file when ``DESTINATION__DUCKDB__CREDENTIALS`` is not configured (git-ignored)."""
LOADER_FILE_FORMAT: Final = "parquet"
"""Parquet for every destination: typed, compressed, what Snowflake's COPY and Snowpipe ingest fastest,
and DuckDB reads it natively (dlt's default for DuckDB, insert_values, is ten times slower). It is the
destination's *preferred* format, so a resource that declares its own ``file_format`` hint keeps it."""
PARSE_JSON_HINT: Final = "x-snowflake-parse-json"
"""A table hint (``additional_table_hints``): on Snowflake, this table's JSON text staged from parquet
lands as VARIANT objects, parsed as it is merged or replaced (``utils/snowflake_json.py``). Without
it, dlt's documented behaviour stays: JSON text from parquet is a VARIANT string."""
DUCKDB_SESSION: Final[dict[str, Any]] = {"preserve_insertion_order": False}
"""Settings for every DuckDB session dlt opens. Row order inside a table means nothing to a warehouse,
and not keeping it lets DuckDB write one INSERT on every core: a 1M-row replace reading its parquet
files in one statement takes 1.1 s instead of 1.9 s (docs/performance.md). The rows it writes that
way cost a checkpoint later, hence :func:`held_open`."""


SNOWFLAKE_DEFAULTS: Final[dict[str, Any]] = {
    # Replace loads into the dataset's ``<DATASET>_STAGING`` schema, then swaps rows in one transaction
    # (TRUNCATE + INSERT ... SELECT, see transactional_snowflake): readers never see an empty or
    # half-loaded table, a failed load leaves the last good rows, and the table itself (grants,
    # comments, time travel) survives. "staging-optimized" re-creates tables by CLONE (loses grants
    # unless enable_atomic_swap; breaks streams on the table) and only pays off for very large replace
    # tables; "truncate-and-insert" exposes an empty table while loading.
    "replace_strategy": "insert-from-staging",
    # Delete each file from the table stage once COPY has loaded it: staged files are billed storage.
    "keep_staged_files": False,
    # Tag every session so QUERY_HISTORY attributes warehouse time to pipeline, table and load.
    "query_tag": (
        '{{"app":"data-pipelines","pipeline":"{pipeline_name}","source":"{source}",'
        '"resource":"{resource}","table":"{table}","load_id":"{load_id}"}}'
    ),
}
"""Production Snowflake settings. Merge strategy is a resource hint (``write_disposition={"disposition":
"merge", "strategy": ...}``), not a destination setting: dlt's default, ``delete-insert``, is ours."""


class transactional_snowflake(dlt.destinations.snowflake):
    """dlt's ``snowflake`` destination (same type, name and configuration) running each merge and
    replace job's SQL in one transaction.

    dlt opens Snowflake sessions with autocommit and wraps a job's SQL in a transaction only when the
    destination declares ``supports_transactions`` (Snowflake's capabilities leave it unset) or the SQL
    holds DDL. The replace swap, ``TRUNCATE`` then ``INSERT ... SELECT`` from staging, therefore committed
    statement by statement: readers saw the table empty in between, and a failed ``INSERT`` left it
    empty until the retry (``tests/utils/test_snowflake.py``).

    Its client reads the merge and replace staging tables of tables hinted :data:`PARSE_JSON_HINT`
    with their JSON text from parquet parsed, so JSON lands as VARIANT objects
    (:mod:`utils.snowflake_json`).
    """

    @property
    def destination_type(self) -> str:
        return DestinationReference.normalize_type("snowflake")  # "dlt.destinations.snowflake"

    @property
    def client_class(self) -> type[Any]:
        # imported here, as dlt's own factory does: the client imports the Snowflake connector
        from utils.snowflake_json import JsonParsingSnowflakeClient

        return JsonParsingSnowflakeClient

    def _raw_capabilities(self) -> DestinationCapabilitiesContext:
        caps = super()._raw_capabilities()
        caps.supports_transactions = True
        return caps


class DestinationConfigError(ValueError):
    """Raised when ``DLT__DESTINATION`` names a destination this repository does not support."""


def destination_name(production: DestinationName = "snowflake") -> DestinationName:
    """Return the destination to load into: ``DLT__DESTINATION`` when set, else ``production``."""
    requested = os.environ.get(DESTINATION_ENV, "").strip().lower()
    if not requested:
        return production
    if requested not in SUPPORTED_DESTINATIONS:
        raise DestinationConfigError(
            f"{DESTINATION_ENV}={requested!r} is not supported; use one of "
            f"{', '.join(SUPPORTED_DESTINATIONS)} (or unset it for the pipeline's production destination)."
        )
    return requested


def duckdb_path() -> str:
    """Where DuckDB writes: dlt's configured credentials if any, else the local warehouse file."""
    configured: Any = dlt.secrets.get("destination.duckdb.credentials") or dlt.config.get(
        "destination.duckdb.credentials"
    )
    if isinstance(configured, dict):  # a section (``global_config`` etc.), the file as its ``database``
        configured = configured.get("database")
    if configured:
        return str(configured)
    LOCAL_WAREHOUSE.parent.mkdir(parents=True, exist_ok=True)
    return str(LOCAL_WAREHOUSE)


def get_destination(production: DestinationName = "snowflake", **options: Any) -> Destination[Any, Any]:
    """Build the destination factory for a pipeline.

    ``options`` are passed to the chosen destination factory, so a pipeline can tune its production
    destination (for example a Snowflake ``replace_strategy``) without knowing about local runs.
    Options meant for another destination are dropped, which keeps the DuckDB switch transparent.
    """
    name = destination_name(production)
    if name == "duckdb":
        # As on Snowflake: replace swaps rows in one transaction, so a run killed mid-load leaves the
        # last good table rather than an empty one (dlt's DuckDB default, truncate-and-insert, empties
        # the table before loading; docs/reliability.md). utils/duckdb_loads.py: each file is loaded
        # once even when a run is killed mid-load, and merge and replace read parquet from the files.
        return exactly_once_duckdb(
            credentials=DuckDbCredentials(duckdb_path(), local_config=dict(DUCKDB_SESSION)),
            replace_strategy="insert-from-staging",
            preferred_loader_file_format=LOADER_FILE_FORMAT,
        )
    if name == "snowflake":
        return transactional_snowflake(
            preferred_loader_file_format=LOADER_FILE_FORMAT,
            **snowflake_options(options if production == "snowflake" else {}),
        )
    return dlt.destinations.filesystem(
        preferred_loader_file_format=LOADER_FILE_FORMAT, **(options if production == "filesystem" else {})
    )


def snowflake_options(options: dict[str, Any]) -> dict[str, Any]:
    """:data:`SNOWFLAKE_DEFAULTS` not set in dlt config, overridden by the pipeline's ``options``."""
    defaults = {
        name: value
        for name, value in SNOWFLAKE_DEFAULTS.items()
        if dlt.config.get(f"destination.snowflake.{name}") is None
    }
    return {**defaults, **options}


@contextlib.contextmanager
def held_open(destination: Destination[Any, Any] | None) -> Iterator[None]:
    """Keep a local DuckDB database open for the ``with`` block (no-op for other destinations).

    dlt opens and closes DuckDB per job; each time the last connection closes, DuckDB checkpoints
    the whole file. One connection opened with dlt's connect settings makes dlt's connections share
    this database instance, so DuckDB checkpoints once, when the block ends, not between jobs.
    Durability is unchanged: every statement still commits. While held, other processes cannot open
    the file (as while any dlt job runs).
    """
    credentials = destination.config_params.get("credentials") if destination else None
    path = credentials.database if isinstance(credentials, DuckDbCredentials) else credentials
    if destination is None or destination.destination_name != "duckdb" or not isinstance(path, str):
        yield
        return
    import duckdb

    try:
        connection = duckdb.connect(path)  # same (default) config as dlt's: shares the instance
    except duckdb.Error:  # e.g. held elsewhere with other settings: dlt reports it if it matters
        yield
        return
    try:
        yield
    finally:
        connection.close()
