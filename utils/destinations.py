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

import os
from pathlib import Path
from typing import Any, Final, Literal

import dlt
from dlt.common.destination import Destination

DestinationName = Literal["snowflake", "duckdb", "filesystem"]

DESTINATION_ENV: Final = "DLT__DESTINATION"
SUPPORTED_DESTINATIONS: Final[tuple[DestinationName, ...]] = ("snowflake", "duckdb", "filesystem")
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
LOCAL_WAREHOUSE: Final = REPO_ROOT / "_warehouse" / "local.duckdb"
"""Default DuckDB file when ``DESTINATION__DUCKDB__CREDENTIALS`` is not configured (git-ignored)."""


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
    configured = dlt.secrets.get("destination.duckdb.credentials", str) or dlt.config.get(
        "destination.duckdb.credentials", str
    )
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
        return dlt.destinations.duckdb(credentials=duckdb_path())
    if name == "snowflake":
        return dlt.destinations.snowflake(**(options if production == "snowflake" else {}))
    return dlt.destinations.filesystem(**(options if production == "filesystem" else {}))
