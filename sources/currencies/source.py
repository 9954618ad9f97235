"""dlt source for currency reference data (see the package docstring for owner and providers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import dlt
import pendulum
from dlt.common.schema.typing import TSchemaContractDict
from dlt.common.typing import TDataItem
from dlt.extract.resource import DltResource

from sources.fx_providers import BASE_URLS, check_provider, frankfurter_currencies, oxr_currencies
from utils.http import ApiError, api_client

COLUMNS: Final[dict[str, Any]] = {
    "iso_code": {"data_type": "text", "nullable": False},
    "iso_numeric": {"data_type": "text"},  # text: ISO numeric codes keep their leading zeros ("008")
    "name": {"data_type": "text", "nullable": False},
    "symbol": {"data_type": "text"},
    "start_date": {"data_type": "date"},
    "end_date": {"data_type": "date"},
    "is_active": {"data_type": "bool", "nullable": False},
    "provider": {"data_type": "text", "nullable": False},
    "loaded_at": {"data_type": "timestamp", "nullable": False},
}


@dlt.source(section="currencies", name="currencies")
def currencies_source(
    provider: str = "frankfurter",
    base_url: str | None = None,
    include_legacy: bool = False,
) -> DltResource:
    """Currency reference data from ``provider``.

    Config (``[sources.currencies]`` or ``SOURCES__CURRENCIES__*``):
        provider: ``frankfurter`` (default, keyless) or ``openexchangerates``.
        base_url: API root; defaults to the provider's public URL.
        include_legacy: also load currencies no longer published (``is_active`` false).
    """
    check_provider(provider, "sources.currencies")
    return currencies(provider, base_url or BASE_URLS[provider], include_legacy)


SCHEMA_CONTRACT: Final[TSchemaContractDict] = {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}
"""A new attribute may arrive as a new column; a changed type (a symbol that is no longer text) fails
the run with the last good table kept, rather than splitting a column into variants."""


@dlt.resource(
    name="currencies",
    write_disposition="replace",
    primary_key="iso_code",
    columns=COLUMNS,
    schema_contract=SCHEMA_CONTRACT,
)
def currencies(provider: str, base_url: str, include_legacy: bool) -> Iterator[TDataItem]:
    """One row per currency; the whole list is validated before any row is yielded."""
    loaded_at = pendulum.now("UTC")
    rows = (
        _frankfurter_rows(base_url, include_legacy)
        if provider == "frankfurter"
        else _open_exchange_rates_rows(base_url, include_legacy)
    )
    seen: set[str] = set()
    for row in rows:
        if row["iso_code"] in seen:
            raise ApiError(f"{provider} listed currency {row['iso_code']} twice; refusing to load duplicates")
        seen.add(row["iso_code"])
        row["provider"] = provider
        row["loaded_at"] = loaded_at
    yield rows


def _frankfurter_rows(base_url: str, include_legacy: bool) -> list[dict[str, Any]]:
    client = api_client(base_url)
    active = frankfurter_currencies(client, legacy=False)
    if not include_legacy:
        return [{**row, "is_active": True} for row in active]
    active_codes = {row["iso_code"] for row in active}
    return [
        {**row, "is_active": row["iso_code"] in active_codes}
        for row in frankfurter_currencies(client, legacy=True)
    ]


def _open_exchange_rates_rows(base_url: str, include_legacy: bool) -> list[dict[str, Any]]:
    client = api_client(base_url)
    active = oxr_currencies(client, show_inactive=False)
    names = oxr_currencies(client, show_inactive=True) if include_legacy else active
    return [
        {
            "iso_code": code,
            "iso_numeric": None,
            "name": name,
            "symbol": None,
            "start_date": None,
            "end_date": None,
            "is_active": code in active,
        }
        for code, name in names.items()
    ]
