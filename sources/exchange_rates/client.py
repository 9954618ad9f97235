"""HTTP access to the exchange-rate providers: Frankfurter v2 (streamed NDJSON) and Open Exchange Rates.

Each function fetches one date range and yields validated rows as ``(date, quote, rate)`` tuples.
Frankfurter's NDJSON is streamed line by line, so memory stays flat; Open Exchange Rates bodies (one day,
or at most 31) and Frankfurter's plain JSON fallback are parsed whole. Retries (429, 5xx, dropped
connections) come from the shared client in ``utils/http.py``; what is left after them is an
:class:`~utils.http.ApiError` a person can act on.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any, Final

import requests
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth

from utils.http import ApiError, check_response, parse_json, redact_url

Row = tuple[dt.date, str, float]
"""One rate: the date it applies to, the quote currency and units of quote per unit of base."""

ISO_CODE: Final = re.compile(r"^[A-Z]{3}$")
NDJSON: Final = "application/x-ndjson"
OXR_TIME_SERIES_DAYS: Final = 31
"""Open Exchange Rates answers time-series requests of at most 31 days."""


class NoData(Exception):
    """The provider has no rates for the requested range (weekends, holidays, not yet published)."""


# Frankfurter -----------------------------------------------------------------------------------
def frankfurter_rates(
    client: RESTClient,
    *,
    base: str,
    quotes: Sequence[str],
    providers: Sequence[str],
    start: dt.date | None,
    end: dt.date | None,
) -> Iterator[Row]:
    """Rates for ``start``..``end`` (both inclusive; ``None`` for the latest day), streamed as NDJSON.

    Raises :class:`NoData` when Frankfurter answers 404 (a range without working days, or a day not yet
    published) and :class:`ApiError` for anything else that is not a usable answer (422 included).
    """
    params: dict[str, str] = {"base": base, "providers": ",".join(providers)}
    if quotes:
        params["quotes"] = ",".join(quotes)
    if start is not None and end is not None:
        params["from"], params["to"] = start.isoformat(), end.isoformat()
    what = f"Frankfurter rates {params.get('from', 'latest')}..{params.get('to', '')}".rstrip(".")
    response = _get(client, "rates", what, params, headers={"Accept": NDJSON}, stream=True)
    with response:
        if response.status_code == 404 and _is_json(response):
            raise NoData(what)
        check_response(response, what)
        content_type = response.headers.get("Content-Type", "")
        if NDJSON in content_type:
            items: Iterator[Any] = _ndjson(response, what)
        else:  # a server (or proxy) that ignores Accept: fall back to the documented JSON array
            body = parse_json(response, what)
            if not isinstance(body, list):
                raise ApiError(f"{what}: expected a JSON array of rates, got {type(body).__name__}")
            items = iter(body)
        for index, item in enumerate(items):
            yield _frankfurter_row(item, index, what, base, start, end)


def _ndjson(response: requests.Response, what: str) -> Iterator[Any]:
    try:
        for number, line in enumerate(response.iter_lines(chunk_size=64 * 1024), start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
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


def _frankfurter_row(
    item: Any, index: int, what: str, base: str, start: dt.date | None, end: dt.date | None
) -> Row:
    if not isinstance(item, dict):
        raise ApiError(f"{what}: record {index} is {type(item).__name__}, not an object")
    day = _parse_date(item.get("date"), f"{what}: record {index} date")
    if item.get("base") != base:
        raise ApiError(f"{what}: record {index} has base {item.get('base')!r}, asked for {base}")
    quote = _check_code(item.get("quote"), f"{what}: record {index} quote")
    if start is not None and end is not None and not start <= day <= end:
        raise ApiError(f"{what}: record {index} is dated {day}, outside the requested range")
    return day, quote, _check_rate(item.get("rate"), f"{what}: {day} {base}/{quote}")


# Open Exchange Rates -----------------------------------------------------------------------------
def oxr_auth(app_id: str) -> APIKeyAuth:
    """The App ID as OXR's ``Authorization: Token <app_id>`` header rather than the ``app_id`` query
    parameter: URLs end up in dlt's and urllib3's debug logs, headers set by an auth object do not."""
    return APIKeyAuth(name="Authorization", api_key=f"Token {app_id}", location="header")


def oxr_rates(
    client: RESTClient,
    *,
    app_id: str,
    base: str,
    quotes: Sequence[str],
    start: dt.date,
    end: dt.date,
    time_series: bool,
) -> Iterator[Row]:
    """End-of-day rates for every calendar day ``start``..``end`` from Open Exchange Rates.

    With ``time_series`` (paid plans) one request covers up to 31 days; otherwise one
    ``historical/<date>.json`` request per day.
    """
    params: dict[str, str] = {"base": base}  # the App ID travels in a header: see oxr_auth
    if quotes:
        params["symbols"] = ",".join(quotes)
    if time_series:
        window_start = start
        while window_start <= end:
            window_end = min(end, window_start + dt.timedelta(days=OXR_TIME_SERIES_DAYS - 1))
            what = f"Open Exchange Rates time series {window_start}..{window_end}"
            body = _oxr_json(
                client,
                "time-series.json",
                what,
                {**params, "start": window_start.isoformat(), "end": window_end.isoformat()},
                app_id,
            )
            days = body.get("rates") if isinstance(body, dict) else None
            if not isinstance(days, dict):
                raise ApiError(f"{what}: expected an object with 'rates' by date")
            for key in sorted(days):
                day = _parse_date(key, f"{what}: date key")
                if not window_start <= day <= window_end:
                    raise ApiError(f"{what}: rates dated {day}, outside the requested range")
                yield from _oxr_day(day, days[key], base, quotes, what)
            window_start = window_end + dt.timedelta(days=1)
        return
    day = start
    while day <= end:
        what = f"Open Exchange Rates historical {day}"
        body = _oxr_json(client, f"historical/{day.isoformat()}.json", what, params, app_id)
        if not isinstance(body, dict) or body.get("base") != base:
            raise ApiError(f"{what}: expected an object with base {base}")
        yield from _oxr_day(day, body.get("rates"), base, quotes, what)
        day += dt.timedelta(days=1)


def _oxr_day(day: dt.date, rates: Any, base: str, quotes: Sequence[str], what: str) -> Iterator[Row]:
    if not isinstance(rates, dict):
        raise ApiError(f"{what}: expected an object of rates for {day}")
    for quote, rate in sorted(rates.items()):
        _check_code(quote, f"{what}: quote")
        # OXR lists the base itself at 1.0; `symbols` is a filter some plans ignore, so filter here too
        if quote != base and (not quotes or quote in quotes):
            yield day, quote, _check_rate(rate, f"{what}: {day} {base}/{quote}")


def _oxr_json(client: RESTClient, path: str, what: str, params: dict[str, str], app_id: str) -> Any:
    response = _get(client, path, what, params)
    try:
        return parse_json(check_response(response, what), what)
    except ApiError as exc:  # belt and braces: no message may ever carry the App ID
        raise ApiError(str(exc).replace(app_id, "***")) from None


# shared ----------------------------------------------------------------------------------------
def _get(
    client: RESTClient,
    path: str,
    what: str,
    params: dict[str, str],
    headers: dict[str, str] | None = None,
    stream: bool = False,
) -> requests.Response:
    try:
        return client.get(path, params=params, headers=headers, stream=stream)
    except requests.RequestException as exc:
        raise ApiError(
            f"{what}: could not reach {redact_url(client.base_url + '/' + path)}: {type(exc).__name__}"
        ) from None


def _is_json(response: requests.Response) -> bool:
    return "json" in response.headers.get("Content-Type", "")


def _parse_date(value: Any, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ApiError(f"{where}: {value!r} is not a YYYY-MM-DD date") from None


def _check_code(code: Any, where: str) -> str:
    if not isinstance(code, str) or not ISO_CODE.match(code):
        raise ApiError(f"{where}: {code!r} is not a three-letter ISO 4217 code")
    return code


def _check_rate(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(f"{where}: rate {value!r} is not a number")
    rate = float(value)
    if not math.isfinite(rate) or rate <= 0:
        raise ApiError(f"{where}: rate {value!r} is not a positive number")
    return rate
