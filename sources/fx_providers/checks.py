"""Constants and checks both currency sources apply: base URLs, ISO 4217 codes, dates and rates."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Final, Literal, get_args

import requests
from dlt.sources.helpers.rest_client import RESTClient

from utils.http import ApiError, sample_of
from utils.redact import redact_url

Provider = Literal["frankfurter", "openexchangerates"]
PROVIDERS: Final = get_args(Provider)
BASE_URLS: Final[dict[str, str]] = {
    "frankfurter": "https://api.frankfurter.dev/v2",
    "openexchangerates": "https://openexchangerates.org/api",
}
ISO_CODE: Final = re.compile(r"^[A-Z]{3}$")
ISO_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
"""The one date form the providers document; ``date.fromisoformat`` alone also takes ``20261116`` and
``2026-W47-1`` (and ``str()`` of a number), which no provider sends on purpose."""

Row = tuple[dt.date, str, float]
"""One rate: the date it applies to, the quote currency and units of quote per unit of base."""


# what the providers send: a bad value is an ApiError ------------------------------------------
def parse_date(value: Any, where: str) -> dt.date:
    """A ``YYYY-MM-DD`` date sent by a provider (text only: a number or an object is not a date)."""
    try:
        if isinstance(value, str) and ISO_DATE.match(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise ApiError(f"{where}: {sample_of(value)} is not a YYYY-MM-DD date")


def check_code(code: Any, where: str) -> str:
    """A three-letter upper-case currency code sent by a provider."""
    if not isinstance(code, str) or not ISO_CODE.match(code):
        raise ApiError(f"{where}: {sample_of(code)} is not a three-letter ISO 4217 code")
    return code


def check_rate(value: Any, where: str) -> float:
    """A finite, positive rate sent by a provider."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(f"{where}: rate {sample_of(value)} is not a number")
    try:
        rate = float(value)
    except OverflowError:  # an integer beyond float range (JSON allows any number of digits)
        rate = math.inf
    if not math.isfinite(rate) or rate <= 0:
        raise ApiError(f"{where}: rate {sample_of(value)} is not a positive number")
    return rate


# what a person configures: a bad value is a ValueError naming the setting ----------------------
def check_provider(provider: str, section: str) -> str:
    if provider not in PROVIDERS:
        raise ValueError(
            f"{section}.provider={provider!r} is not supported; use one of {', '.join(PROVIDERS)}"
        )
    return provider


def config_code(value: Any, where: str) -> str:
    code = str(value).strip().upper()
    if not ISO_CODE.match(code):
        raise ValueError(f"{where}: {value!r} is not a three-letter ISO 4217 code")
    return code


def config_date(value: str | dt.date | None, name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a YYYY-MM-DD date") from None


def as_list(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.split(",") if part.strip()]
    return list(value)


def get(
    client: RESTClient,
    path: str,
    what: str,
    params: dict[str, str],
    headers: dict[str, str] | None = None,
    stream: bool = False,
) -> requests.Response:
    """GET with the client's retries; a connection that never answers is an :class:`ApiError`."""
    try:
        return client.get(path, params=params, headers=headers, stream=stream)
    except requests.RequestException as exc:
        raise ApiError(
            f"{what}: could not reach {redact_url(client.base_url + '/' + path)}: {type(exc).__name__}"
        ) from None
