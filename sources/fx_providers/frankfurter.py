"""Frankfurter v2 over HTTP: rates (streamed NDJSON), the provider list and the currency list.

What the real server does and this code relies on (see ``docs/exchange_rates.md``): an empty result is
200 with an empty body, 404 only means an unknown route (a wrong ``base_url``), 422 carries
``{status, message}``; range answers may hold rows dated before ``from`` (carry-forward) and an identity
row (base = quote, rate 1.0). Rows are passed on as sent, validated; the caller decides what to keep.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import requests
from dlt.sources.helpers.rest_client import RESTClient

from sources.fx_providers.checks import Row, check_code, check_rate, get, parse_date
from utils.http import ApiError, check_response, get_json, loads, parse_json, sample_of
from utils.redact import redact_url

NDJSON: Final = "application/x-ndjson"


@dataclass(frozen=True)
class FrankfurterProvider:
    """One entry of ``GET /v2/providers``: a data provider's key, currencies and date coverage."""

    key: str
    currencies: frozenset[str]
    start_date: dt.date | None
    end_date: dt.date | None
    """The newest date the provider has published (the real server's max over its currencies)."""


def frankfurter_rates(
    client: RESTClient,
    *,
    base: str,
    quotes: Sequence[str],
    providers: Sequence[str],
    start: dt.date | None,
    end: dt.date | None,
) -> Iterator[Row]:
    """Rows for ``start``..``end`` (``None``: the latest snapshot), streamed as NDJSON, as the server sends
    them: carry-forward rows dated before ``start`` and identity rows included."""
    params: dict[str, str] = {"base": base, "providers": ",".join(providers)}
    if quotes:
        params["quotes"] = ",".join(quotes)
    if start is not None and end is not None:
        params["from"], params["to"] = start.isoformat(), end.isoformat()
    what = f"Frankfurter rates {params.get('from', 'latest')}..{params.get('to', '')}".rstrip(".")
    response = get(client, "rates", what, params, headers={"Accept": NDJSON}, stream=True)
    with response:
        if response.status_code == 404:
            raise ApiError(
                f"{what}: {redact_url(response.url)} answered HTTP 404: Frankfurter answers 404 only for "
                "an unknown route, so check sources.exchange_rates.base_url (it should end in /v2)"
            )
        check_response(response, what)
        if NDJSON in response.headers.get("Content-Type", ""):
            items: Iterator[Any] = _ndjson(response, what)
        else:  # a server (or proxy) that ignores Accept: fall back to the documented JSON array
            body = parse_json(response, what) if response.content.strip() else []
            if not isinstance(body, list):
                raise ApiError(f"{what}: expected a JSON array of rates, got {type(body).__name__}")
            items = iter(body)
        for index, item in enumerate(items):
            yield _row(item, index, what, base)


def frankfurter_providers(client: RESTClient) -> dict[str, FrankfurterProvider]:
    """``GET /v2/providers`` by key."""
    what = "Frankfurter providers"
    body = get_json(client, "providers", what)
    if not isinstance(body, list):
        raise ApiError(f"{what}: expected a JSON array, got {type(body).__name__}")
    result = {}
    for index, item in enumerate(body):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise ApiError(f"{what}: item {index} is not an object with a key")
        currencies = item.get("currencies") or []
        if not isinstance(currencies, list):
            raise ApiError(f"{what}: {item['key']}.currencies is not a list")
        result[item["key"].upper()] = FrankfurterProvider(
            key=item["key"].upper(),
            currencies=frozenset(check_code(c, f"{what}: {item['key']} currency") for c in currencies),
            start_date=_optional_date(item.get("start_date"), f"{what}: {item['key']}.start_date"),
            end_date=_optional_date(item.get("end_date"), f"{what}: {item['key']}.end_date"),
        )
    return result


def frankfurter_currencies(client: RESTClient, *, legacy: bool) -> list[dict[str, Any]]:
    """``GET /v2/currencies`` (``scope=all`` with ``legacy``), validated, one dict per currency."""
    what = "Frankfurter currencies"
    body = get_json(client, "currencies", what, {"scope": "all"} if legacy else None)
    if not isinstance(body, list):
        raise ApiError(f"{what}: expected a JSON array, got {type(body).__name__}")
    rows = []
    for index, item in enumerate(body):
        if not isinstance(item, dict):
            raise ApiError(f"{what}: item {index} is {type(item).__name__}, not an object")
        code = check_code(item.get("iso_code"), f"{what} item {index}")
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise ApiError(f"{what}: item {index} ({code}) has no name")
        symbol = item.get("symbol")
        if symbol is not None and not isinstance(symbol, str):
            raise ApiError(
                f"{what}: item {index} ({code}) has a symbol that is not text: {sample_of(symbol)}"
            )
        rows.append(
            {
                "iso_code": code,
                "iso_numeric": _iso_numeric(item.get("iso_numeric"), f"{what}: {code}.iso_numeric"),
                "name": item["name"],
                "symbol": symbol,
                "start_date": _optional_date(item.get("start_date"), f"{what}: {code}.start_date"),
                "end_date": _optional_date(item.get("end_date"), f"{what}: {code}.end_date"),
            }
        )
    return rows


def _optional_date(value: Any, where: str) -> dt.date | None:
    if value is None or value == "":
        return None
    try:
        return parse_date(value, where)
    except ApiError:
        raise ApiError(f"{where}: {sample_of(value)} is not a date (YYYY-MM-DD expected)") from None


def _iso_numeric(value: Any, where: str) -> str | None:
    """ISO 4217's three-digit number as text (``"008"``); Frankfurter sends text, a number is padded.

    ``None`` when the server has none: ``""`` for the ``money`` gem's non-ISO codes (GGP, IMP, JEP, CNH)
    and null (or no key) for a code the gem does not know. Never invented from another source.
    """
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 999:
        return str(value).zfill(3)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 3:
        return value.zfill(3)
    raise ApiError(f"{where}: {sample_of(value)} is not an ISO 4217 numeric code (three digits)")


def _ndjson(response: requests.Response, what: str) -> Iterator[Any]:
    try:
        for number, line in enumerate(response.iter_lines(chunk_size=64 * 1024), start=1):
            if not line.strip():
                continue
            try:
                yield loads(line)
            except ValueError:
                sample = line[:80].decode("utf-8", "replace")
                raise ApiError(
                    f"{what}: line {number} of the NDJSON stream is not JSON: {sample!r}"
                ) from None
    except requests.RequestException as exc:
        raise ApiError(
            f"{what}: the connection broke while streaming {redact_url(response.url)} "
            f"({type(exc).__name__}); nothing from this run is kept - run it again"
        ) from None


def _row(item: Any, index: int, what: str, base: str) -> Row:
    if not isinstance(item, dict):
        raise ApiError(f"{what}: record {index} is {type(item).__name__}, not an object")
    day = parse_date(item.get("date"), f"{what}: record {index} date")
    if item.get("base") != base:
        raise ApiError(f"{what}: record {index} has base {sample_of(item.get('base'))}, asked for {base}")
    quote = check_code(item.get("quote"), f"{what}: record {index} quote")
    return day, quote, check_rate(item.get("rate"), f"{what}: {day} {base}/{quote}")
