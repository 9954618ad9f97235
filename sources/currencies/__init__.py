"""Currency reference data: ISO code, numeric code, name, symbol, dates available and an active flag.

Owner: data platform team (#data-platform).
Providers: Frankfurter v2 ``GET /currencies`` (default, keyless, https://frankfurter.dev) and
Open Exchange Rates ``GET /api/currencies.json`` (https://docs.openexchangerates.org).
Provider calls and checks come from ``sources.fx_providers``; behaviours relied on: ``docs/currencies.md``.
Loaded with ``write_disposition="replace"``: the table is always the provider's current list.
"""

from sources.currencies.source import currencies, currencies_source

__all__ = ["currencies", "currencies_source"]
