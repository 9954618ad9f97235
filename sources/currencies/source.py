"""dlt source for currency reference data (see the package docstring for owner and providers)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final, Literal, get_args

import dlt
import pendulum
from dlt.common.schema.typing import TSchemaContractDict
from dlt.common.typing import TDataItem
from dlt.extract.resource import DltResource

from utils.http import ApiError, api_client, get_json

Provider = Literal["frankfurter", "openexchangerates"]
PROVIDERS: Final = get_args(Provider)
DEFAULT_BASE_URLS: Final[dict[str, str]] = {
    "frankfurter": "https://api.frankfurter.dev/v2",
    "openexchangerates": "https://openexchangerates.org/api",
}
ISO_CODE: Final = re.compile(r"^[A-Z]{3}$")

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
    if provider not in PROVIDERS:
        raise ValueError(
            f"sources.currencies.provider={provider!r} is not supported; use one of {', '.join(PROVIDERS)}"
        )
    return currencies(provider, base_url or DEFAULT_BASE_URLS[provider], include_legacy)


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
    active = _frankfurter_list(get_json(client, "currencies", "Frankfurter currencies"))
    if not include_legacy:
        return active
    active_codes = {row["iso_code"] for row in active}
    every = _frankfurter_list(get_json(client, "currencies", "Frankfurter currencies", {"scope": "all"}))
    for row in every:
        row["is_active"] = row["iso_code"] in active_codes
    return every


def _frankfurter_list(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise ApiError(f"Frankfurter currencies: expected a JSON array, got {type(body).__name__}")
    rows = []
    for index, item in enumerate(body):
        if not isinstance(item, dict):
            raise ApiError(f"Frankfurter currencies: item {index} is {type(item).__name__}, not an object")
        code = item.get("iso_code")
        _check_code(code, f"Frankfurter currencies item {index}")
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise ApiError(f"Frankfurter currencies: item {index} ({code}) has no name")
        numeric = item.get("iso_numeric")
        rows.append(
            {
                "iso_code": code,
                "iso_numeric": None if numeric is None else str(numeric).zfill(3),
                "name": item["name"],
                "symbol": item.get("symbol"),
                "start_date": _date(item.get("start_date"), code, "start_date"),
                "end_date": _date(item.get("end_date"), code, "end_date"),
                "is_active": True,
            }
        )
    return rows


def _open_exchange_rates_rows(base_url: str, include_legacy: bool) -> list[dict[str, Any]]:
    client = api_client(base_url)
    active = _oxr_map(get_json(client, "currencies.json", "Open Exchange Rates currencies"))
    names = active
    if include_legacy:
        every = get_json(client, "currencies.json", "Open Exchange Rates currencies", {"show_inactive": "1"})
        names = _oxr_map(every)
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


def _oxr_map(body: Any) -> dict[str, str]:
    if not isinstance(body, dict):
        raise ApiError(f"Open Exchange Rates currencies: expected a JSON object, got {type(body).__name__}")
    for code, name in body.items():
        _check_code(code, "Open Exchange Rates currencies")
        if not isinstance(name, str):
            raise ApiError(f"Open Exchange Rates currencies: {code} has a non-text name {name!r}")
    return dict(body)


def _check_code(code: Any, where: str) -> None:
    if not isinstance(code, str) or not ISO_CODE.match(code):
        raise ApiError(f"{where}: {code!r} is not a three-letter ISO 4217 code")


def _date(value: Any, code: Any, field: str) -> pendulum.Date | None:
    if value is None:
        return None
    try:
        parsed = pendulum.parse(str(value), exact=True)
    except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
        raise ApiError(f"Frankfurter currencies: {code}.{field}={value!r} is not a date: {exc}") from None
    if not isinstance(parsed, pendulum.Date):
        raise ApiError(f"Frankfurter currencies: {code}.{field}={value!r} is not a date")
    return parsed if not isinstance(parsed, pendulum.DateTime) else parsed.date()
