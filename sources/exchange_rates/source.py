"""dlt source for daily exchange rates (see the package docstring for owner, providers and modes).

No duplicates, with append and without a merge: the resource state keeps, per base currency, the date
ranges already loaded (``coverage``), and every run asks only for the gaps and drops any row whose
(date, base, quote) is already covered. dlt commits that state in the same load package as the rows, so
it only advances when they load; a run that fails while extracting leaves it untouched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

import dlt
import pendulum
import pyarrow as pa
from dlt.common.schema.typing import TSchemaContractDict
from dlt.common.typing import TDataItem, TSecretStrValue
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient

from sources.exchange_rates.coverage import (
    ALL_QUOTES,
    Interval,
    RowFilter,
    covered_for,
    from_state,
    merge,
    split_years,
    subtract,
    to_state,
)
from sources.fx_providers import (
    BASE_URLS,
    Row,
    as_list,
    check_provider,
    config_code,
    config_date,
    frankfurter_providers,
    frankfurter_rates,
    oxr_auth,
    oxr_rates,
)
from utils.http import ApiError, api_client

Mode = Literal["latest", "backfill"]
MODES: Final = get_args(Mode)
OXR_PROVIDER_KEY: Final = "OXR"
CACHE_DAYS: Final = 4
"""Frankfurter's edge may serve a range answer up to 3 days old (``max-age``, ``stale-while-revalidate``
and ``stale-if-error`` of a day each, lib/versions/v2.rb), plus a day of margin."""
BATCH_ROWS: Final = 10_000
"""Rows handed to dlt at a time: big enough to keep per-item overhead low, small enough to stay flat."""

TABLE: Final = "rates"
KEY: Final = ("rate_date", "base_currency", "quote_currency")
COLUMNS: Final[dict[str, Any]] = {
    "rate_date": {"data_type": "date", "nullable": False},
    "base_currency": {"data_type": "text", "nullable": False},
    "quote_currency": {"data_type": "text", "nullable": False},
    # double: rates are ratios spanning twelve orders of magnitude (TRL per EUR ~1.7e6, EUR per TRL
    # ~6e-7) published with at most six significant digits; a float64 keeps every one of them exactly
    # as published (shortest round-trip), where any fixed-scale decimal truncates the small ones.
    "rate": {"data_type": "double", "nullable": False},
    "provider": {"data_type": "text", "nullable": False},
    "loaded_at": {"data_type": "timestamp", "nullable": False},
}

EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one run."""

    mode: str
    provider: str
    base_url: str
    base_currency: str
    quotes: tuple[str, ...]
    providers: tuple[str, ...]
    start_date: dt.date | None
    end_date: dt.date | None
    as_of: dt.date
    app_id: str | None = field(repr=False)  # a secret: never in a repr, log line or error
    oxr_time_series: bool = False

    @property
    def selection(self) -> str:
        """The state key of the quote selection: ``*`` for all quotes, else the sorted codes."""
        return ",".join(self.quotes) if self.quotes else ALL_QUOTES

    @property
    def provider_label(self) -> str:
        """The ``provider`` column: Frankfurter's data provider keys (blended), or ``OXR``."""
        return ",".join(self.providers) if self.provider == "frankfurter" else OXR_PROVIDER_KEY


@dlt.source(section="exchange_rates", name="exchange_rates")
def exchange_rates_source(
    mode: str = "latest",
    start_date: str | dt.date | None = None,
    end_date: str | dt.date | None = None,
    provider: str = "frankfurter",
    base_url: str | None = None,
    base_currency: str = "EUR",
    quotes: list[str] | str | None = None,
    providers: list[str] | str | None = None,
    as_of: str | dt.date | None = None,
    app_id: TSecretStrValue | None = None,
    oxr_time_series: bool = False,
) -> DltResource:
    """Daily exchange rates, one row per (``rate_date``, ``base_currency``, ``quote_currency``).

    Config (``[sources.exchange_rates]`` or ``SOURCES__EXCHANGE_RATES__*``):
        mode: ``latest`` (the daily run: dates after the last loaded one) or ``backfill``.
        start_date, end_date: the backfill range (``end_date`` defaults to ``as_of``).
        provider: ``frankfurter`` (default, keyless) or ``openexchangerates`` (needs ``app_id``).
        base_url: API root; defaults to the provider's public URL.
        base_currency: default ``EUR``. quotes: quote currencies, default all.
        providers: Frankfurter data providers, default ``["ECB"]`` (several are blended by Frankfurter).
        as_of: the date the run treats as today (default: the current UTC date).
        app_id: Open Exchange Rates App ID (secret). oxr_time_series: use OXR's time-series endpoint
            (paid plans) instead of one request per day.
    """
    return rates(
        dict(
            mode=mode,
            start_date=start_date,
            end_date=end_date,
            provider=provider,
            base_url=base_url,
            base_currency=base_currency,
            quotes=quotes,
            providers=providers,
            as_of=as_of,
            app_id=app_id,
            oxr_time_series=oxr_time_series,
        )
    )


SCHEMA_CONTRACT: Final[TSchemaContractDict] = {"tables": "evolve", "columns": "freeze", "data_type": "freeze"}
"""The columns are a contract with Snowpipe's COPY and the models downstream: a new column or a changed
type fails the run before anything is loaded, instead of landing files the pipe cannot read."""


@dlt.resource(
    name=TABLE, write_disposition="append", primary_key=KEY, columns=COLUMNS, schema_contract=SCHEMA_CONTRACT
)
def rates(options: dict[str, Any]) -> Iterator[TDataItem]:
    """Rows not loaded before, in batches; records the newly loaded ranges in the resource state.

    Options are validated here rather than in the source so that a bad setting fails the extract step
    with a clear message in the run report. What is kept of each answer:

    - rows dated outside the requested range are dropped: Frankfurter's carry-forward surfaces the newest
      earlier observation (up to 14 days back) when a range opens on a day without rates, or near a
      currency's last publication; such a row belongs to another range, loaded or loadable by its own run;
    - identity rows (base = quote, rate 1.0) are dropped for every provider (the one contract, see
      ``docs/exchange_rates.md``);
    - a (date, quote) already covered by an earlier run is dropped, so nothing is written twice.
    """
    settings = _settings(**options)
    oxr = settings.provider == "openexchangerates" and settings.app_id is not None
    client = api_client(settings.base_url, auth=oxr_auth(settings.app_id or "") if oxr else None)
    settled_until = _settled_until(client, settings)
    coverage_by_base: dict[str, dict[str, list[list[str]]]] = dlt.current.resource_state().setdefault(
        "coverage", {}
    )
    stored = coverage_by_base.get(settings.base_currency, {})
    coverage = {selection: from_state(ranges) for selection, ranges in stored.items()}
    known = covered_for(settings.quotes, coverage)
    batch = _Batch(settings.base_currency, settings.provider_label, pendulum.now("UTC"))
    row_filter = RowFilter(coverage)
    newly_covered: list[Interval] = []
    newest = _Newest(max((end for ranges in coverage.values() for _, end in ranges), default=0))

    for request in _plan(settings, known):
        answer = newest.track(_fetch(client, settings, request))
        requested, kept = _in_range(answer, request, settings.base_currency)
        seen: set[tuple[int, str]] = set()
        for ordinal, quote, rate in kept:
            if (ordinal, quote) in seen:
                day = dt.date.fromordinal(ordinal)
                raise ApiError(f"{settings.provider} listed {day} {settings.base_currency}/{quote} twice")
            seen.add((ordinal, quote))
            if not row_filter.covered(quote, ordinal) and batch.add(ordinal, quote, rate) >= BATCH_ROWS:
                yield batch.flush()
        if requested is not None:
            newly_covered.append(requested)
    if len(batch):
        yield batch.flush()

    # A day counts as loaded once the provider has published it or a later day, by its own word (the end
    # date in /v2/providers for Frankfurter; the day is over for Open Exchange Rates). Within the reach
    # of Frankfurter's edge cache a day also needs an answer that holds it or a later day, so a stale
    # cached answer cannot close a day it lacks. A day without rates before that is a weekend or holiday
    # for good; newer days stay open for the next run.
    settled_until = min(settled_until, max(newest.ordinal, settings.as_of.toordinal() - CACHE_DAYS))
    settled = [(start, min(end, settled_until)) for start, end in newly_covered if 0 < start <= settled_until]
    if settled:
        selection = settings.selection
        coverage[selection] = merge([*coverage.get(selection, []), *settled])
        coverage_by_base[settings.base_currency] = {
            key: to_state(ranges) for key, ranges in sorted(coverage.items())
        }


class _Newest:
    """The newest date seen in any answer of this run (or already covered), as an ordinal."""

    def __init__(self, ordinal: int) -> None:
        self.ordinal = ordinal

    def track(self, rows: Iterator[Row]) -> Iterator[Row]:
        for row in rows:
            self.ordinal = max(self.ordinal, row[0].toordinal())
            yield row


def _in_range(
    rows: Iterator[Row], request: Interval | None, base: str
) -> tuple[Interval | None, Iterator[tuple[int, str, float]]]:
    """The interval a request covers and its rows as ``(ordinal, quote, rate)``, identity rows and rows
    dated outside the interval left out. The latest snapshot (``request is None``) mixes dates (each
    quote's newest observation): it covers its newest date, and only rows of that date are kept."""
    if request is not None:
        start, end = request
        kept = (
            (day.toordinal(), quote, rate)
            for day, quote, rate in rows
            if quote != base and start <= day.toordinal() <= end
        )
        return request, kept
    snapshot = [(day.toordinal(), quote, rate) for day, quote, rate in rows if quote != base]
    if not snapshot:
        return None, iter(())
    newest = max(ordinal for ordinal, _, _ in snapshot)
    return (newest, newest), iter([row for row in snapshot if row[0] == newest])


def _settled_until(client: RESTClient, settings: Settings) -> int:
    """The last day whose rates are final, as an ordinal; for Frankfurter also checks the configured
    data provider keys, base and quotes against ``GET /v2/providers`` (a typo there answers 200 with
    no rows on the real server, which would otherwise become a silent, permanent gap)."""
    if settings.provider == "openexchangerates":
        return settings.as_of.toordinal() - 1  # OXR has a rate for every day that is over
    known = frankfurter_providers(client)
    unknown = [key for key in settings.providers if key not in known]
    if unknown:
        raise ValueError(
            f"sources.exchange_rates.providers: {', '.join(unknown)} is not a Frankfurter data provider; "
            f"GET {settings.base_url}/providers lists {', '.join(sorted(known)) or 'none'}"
        )
    chosen = [known[key] for key in settings.providers]
    published = set().union(*(p.currencies for p in chosen))
    missing = [code for code in (settings.base_currency, *settings.quotes) if code not in published]
    if missing:
        raise ValueError(
            f"sources.exchange_rates: {', '.join(settings.providers)} does not publish {', '.join(missing)} "
            f"(see GET {settings.base_url}/providers); change base_currency/quotes or providers"
        )
    ends = [p.end_date for p in chosen]
    if any(end is None for end in ends):
        return 0  # a provider without data yet: nothing is final
    return min(min(end for end in ends if end is not None), settings.as_of).toordinal()


# planning ------------------------------------------------------------------------------------------
def _plan(settings: Settings, known: list[Interval]) -> list[Interval | None]:
    """The date ranges to request (``None``: Frankfurter's latest day), one calendar year at most each."""
    as_of = settings.as_of.toordinal()
    last_closed = as_of - 1 if settings.provider == "openexchangerates" else as_of
    if settings.mode == "latest":
        if not known:
            if settings.provider == "frankfurter":
                return [None]
            return [(last_closed, last_closed)]
        wanted: list[Interval] = [(known[-1][1] + 1, last_closed)]
    else:
        assert settings.start_date is not None
        end = min(settings.end_date.toordinal() if settings.end_date else as_of, last_closed)
        wanted = [(settings.start_date.toordinal(), end)]
    gaps = subtract(wanted, known)
    return [chunk for gap in gaps for chunk in split_years(gap)]


def _fetch(client: RESTClient, settings: Settings, request: Interval | None) -> Iterator[Row]:
    start = dt.date.fromordinal(request[0]) if request else None
    end = dt.date.fromordinal(request[1]) if request else None
    if settings.provider == "frankfurter":
        yield from frankfurter_rates(
            client,
            base=settings.base_currency,
            quotes=settings.quotes,
            providers=settings.providers,
            start=start,
            end=end,
        )
        return
    assert start is not None and end is not None and settings.app_id
    yield from oxr_rates(
        client,
        app_id=settings.app_id,
        base=settings.base_currency,
        quotes=settings.quotes,
        start=start,
        end=end,
        time_series=settings.oxr_time_series,
    )


class _Batch:
    """Rows collected column by column and handed to dlt as an Arrow table (no per-row normalising)."""

    SCHEMA: Final = pa.schema(
        [
            pa.field("rate_date", pa.date32(), nullable=False),
            pa.field("base_currency", pa.string(), nullable=False),
            pa.field("quote_currency", pa.string(), nullable=False),
            pa.field("rate", pa.float64(), nullable=False),
            pa.field("provider", pa.string(), nullable=False),
            pa.field("loaded_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )

    def __init__(self, base: str, provider: str, loaded_at: dt.datetime) -> None:
        self._constants = (pa.scalar(base), pa.scalar(provider), pa.scalar(loaded_at, self.SCHEMA[5].type))
        self._days: list[int] = []
        self._quotes: list[str] = []
        self._rates: list[float] = []

    def __len__(self) -> int:
        return len(self._days)

    def add(self, ordinal: int, quote: str, rate: float) -> int:
        self._days.append(ordinal - EPOCH_ORDINAL)
        self._quotes.append(quote)
        self._rates.append(rate)
        return len(self._days)

    def flush(self) -> pa.Table:
        size = len(self._days)
        base, provider, loaded_at = (pa.repeat(value, size) for value in self._constants)
        table = pa.Table.from_arrays(
            [
                pa.array(self._days, pa.int32()).cast(pa.date32()),
                base,
                pa.array(self._quotes, pa.string()),
                pa.array(self._rates, pa.float64()),
                provider,
                loaded_at,
            ],
            schema=self.SCHEMA,
        )
        self._days, self._quotes, self._rates = [], [], []
        return table


# configuration ------------------------------------------------------------------------------------
def _settings(
    *,
    mode: str,
    start_date: str | dt.date | None,
    end_date: str | dt.date | None,
    provider: str,
    base_url: str | None,
    base_currency: str,
    quotes: list[str] | str | None,
    providers: list[str] | str | None,
    as_of: str | dt.date | None,
    app_id: str | None,
    oxr_time_series: bool,
) -> Settings:
    section = "sources.exchange_rates"
    if mode not in MODES:
        raise ValueError(f"{section}.mode={mode!r} is not supported; use one of {', '.join(MODES)}")
    check_provider(provider, section)
    base = config_code(base_currency, f"{section}.base_currency")
    quote_list = tuple(sorted({config_code(q, f"{section}.quotes") for q in as_list(quotes)} - {base}))
    provider_list = tuple(sorted({p.strip().upper() for p in as_list(providers) or ["ECB"] if p.strip()}))
    start, end = config_date(start_date, "start_date"), config_date(end_date, "end_date")
    today = config_date(as_of, "as_of") or pendulum.now("UTC").date()
    if mode == "backfill" and start is None:
        raise ValueError("a backfill needs a start date (--start-date YYYY-MM-DD)")
    if start and end and start > end:
        raise ValueError(f"start_date {start} is after end_date {end}")
    if provider == "openexchangerates" and not app_id:
        raise ValueError(
            f"{section}.app_id is missing: Open Exchange Rates needs an App ID "
            "(.dlt/secrets.toml or SOURCES__EXCHANGE_RATES__APP_ID)"
        )
    return Settings(
        mode=mode,
        provider=provider,
        base_url=base_url or BASE_URLS[provider],
        base_currency=base,
        quotes=quote_list,
        providers=provider_list,
        start_date=start,
        end_date=end,
        as_of=dt.date(today.year, today.month, today.day),
        app_id=app_id,
        oxr_time_series=oxr_time_series,
    )
