"""Open Exchange Rates over HTTP: daily rates (``historical``/``time-series``) and the currency list.

OXR publishes a rate for every calendar day (weekends included), lists the base itself at 1.0, and
treats ``symbols`` as a filter. Bodies are one day, or at most 31, so they are parsed whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any, Final

import requests
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth

from sources.fx_providers.checks import Row, check_code, check_rate, get, parse_date
from utils.http import ApiError, check_response, get_json, json_body, parse_json, sample_of

TIME_SERIES_DAYS: Final = 31
"""Open Exchange Rates answers time-series requests of at most 31 days."""


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
    """End-of-day rates for every calendar day ``start``..``end``, as sent (the base's own 1.0 included).

    With ``time_series`` (paid plans) one request covers up to 31 days; otherwise one
    ``historical/<date>.json`` request per day.
    """
    params: dict[str, str] = {"base": base}  # the App ID travels in a header: see oxr_auth
    if quotes:
        params["symbols"] = ",".join(quotes)
    if time_series:
        window_start = start
        while window_start <= end:
            window_end = min(end, window_start + dt.timedelta(days=TIME_SERIES_DAYS - 1))
            what = f"Open Exchange Rates time series {window_start}..{window_end}"
            body = _json(
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
                yield from _day(parse_date(key, f"{what}: date key"), days[key], base, quotes, what)
            window_start = window_end + dt.timedelta(days=1)
        return
    day = start
    while day <= end:
        what = f"Open Exchange Rates historical {day}"
        body = _json(client, f"historical/{day.isoformat()}.json", what, params, app_id)
        if not isinstance(body, dict) or body.get("base") != base:
            raise ApiError(f"{what}: expected an object with base {base}")
        yield from _day(day, body.get("rates"), base, quotes, what)
        day += dt.timedelta(days=1)


def oxr_currencies(client: RESTClient, *, show_inactive: bool) -> dict[str, str]:
    """``GET /currencies.json`` (keyless): code -> name; ``show_inactive`` adds retired currencies."""
    what = "Open Exchange Rates currencies"
    body = get_json(client, "currencies.json", what, {"show_inactive": "1"} if show_inactive else None)
    if not isinstance(body, dict):
        raise ApiError(f"{what}: expected a JSON object, got {type(body).__name__}")
    for code, name in body.items():
        check_code(code, what)
        if not isinstance(name, str):
            raise ApiError(f"{what}: {code} has a non-text name {sample_of(name)}")
    return dict(body)


def _day(day: dt.date, rates: Any, base: str, quotes: Sequence[str], what: str) -> Iterator[Row]:
    if not isinstance(rates, dict):
        raise ApiError(f"{what}: expected an object of rates for {day}")
    for quote, rate in sorted(rates.items()):
        check_code(quote, f"{what}: quote")
        # `symbols` is a filter some plans ignore, so filter here too (the base itself is the caller's call)
        if not quotes or quote in quotes or quote == base:
            yield day, quote, check_rate(rate, f"{what}: {day} {base}/{quote}")


def _json(client: RESTClient, path: str, what: str, params: dict[str, str], app_id: str) -> Any:
    response = get(client, path, what, params)
    if response.status_code == 429 and _message(response) == "not_allowed":
        # OXR answers a feature the plan lacks with 429 "not_allowed" (its documented error table), so it
        # is retried like a rate limit first; what is left must not read as one
        raise ApiError(
            f"{what}: Open Exchange Rates answered 429 not_allowed - the plan behind this App ID does not "
            "include this request: a base currency other than USD and time-series need a paid plan "
            '(set sources.exchange_rates.base_currency = "USD" / oxr_time_series = false)'
        )
    try:
        return parse_json(check_response(response, what), what)
    except ApiError as exc:  # belt and braces: no message may ever carry the App ID
        raise ApiError(str(exc).replace(app_id, "***")) from None


def _message(response: requests.Response) -> str | None:
    try:
        body = json_body(response)
    except ValueError:
        return None
    return body.get("message") if isinstance(body, dict) else None
