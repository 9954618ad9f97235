"""Daily exchange rates in long format: one row per (rate_date, base_currency, quote_currency).

Owner: data platform team (#data-platform).
Providers: Frankfurter v2 ``GET /rates`` (default, keyless, ECB reference rates; https://frankfurter.dev,
OpenAPI at https://api.frankfurter.dev/v2) and Open Exchange Rates ``historical``/``time-series``
(``app_id`` secret; https://docs.openexchangerates.org).
Columns (the contract downstream models use): ``rate_date``, ``base_currency``, ``quote_currency``,
``rate``, ``provider``, ``loaded_at``. Loaded with ``write_disposition="append"``; the source itself
guarantees that no (date, base, quote) is ever written twice (see ``source.py``).
Provider calls, checks and base URLs come from ``sources.fx_providers`` (shared with ``currencies``); the
provider behaviours this relies on are listed in ``docs/exchange_rates.md``.
Modes: ``latest`` (the daily run: only dates after the last loaded one) and ``backfill`` over a date
range, skipping ranges already loaded: with Frankfurter one streamed NDJSON request per calendar year;
with Open Exchange Rates one request per day, or per 31 days with ``oxr_time_series``.
"""

from sources.exchange_rates.source import COLUMNS, TABLE, exchange_rates_source, rates

__all__ = ["COLUMNS", "TABLE", "exchange_rates_source", "rates"]
