"""The currency providers shared by the ``currencies`` and ``exchange_rates`` sources.

Owner: data platform team (#data-platform).
One place for what both sources need from Frankfurter v2 (https://frankfurter.dev, keyless) and Open
Exchange Rates (https://docs.openexchangerates.org, ``app_id``): the public base URLs, the ISO code,
date and rate checks, and the HTTP calls. The provider behaviours the code relies on are listed in
``docs/exchange_rates.md`` and ``docs/currencies.md``.
"""

from sources.fx_providers.checks import (
    BASE_URLS,
    ISO_CODE,
    PROVIDERS,
    Provider,
    Row,
    as_list,
    check_code,
    check_provider,
    check_rate,
    config_code,
    config_date,
    parse_date,
)
from sources.fx_providers.frankfurter import (
    FrankfurterProvider,
    frankfurter_currencies,
    frankfurter_providers,
    frankfurter_rates,
)
from sources.fx_providers.oxr import oxr_auth, oxr_currencies, oxr_rates

__all__ = [
    "BASE_URLS",
    "ISO_CODE",
    "PROVIDERS",
    "FrankfurterProvider",
    "Provider",
    "Row",
    "as_list",
    "check_code",
    "check_provider",
    "check_rate",
    "config_code",
    "config_date",
    "frankfurter_currencies",
    "frankfurter_providers",
    "frankfurter_rates",
    "oxr_auth",
    "oxr_currencies",
    "oxr_rates",
    "parse_date",
]
