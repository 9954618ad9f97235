"""HubSpot CRM objects (contacts, companies, deals by default; tickets, products and custom objects on
request) with all their properties, associations and archived (deleted) records, loaded incrementally.

Owner: data platform team (#data-platform).
API: HubSpot CRM v3 objects, search and properties, v4 associations
(https://developers.hubspot.com/docs/api/crm/understanding-the-crm), private-app token as Bearer.
Loaded with ``write_disposition="merge"`` on ``id``: the first run reads every record, later runs the
records changed since the last successful load, both through the search API (see ``client.py`` and
docs/hubspot.md for the provider behaviours relied on).
"""

from sources.hubspot.client import HubSpotAuthError, HubSpotClient, HubSpotError
from sources.hubspot.limits import SlidingWindowLimiter
from sources.hubspot.source import hubspot_source, object_records

__all__ = [
    "HubSpotAuthError",
    "HubSpotClient",
    "HubSpotError",
    "SlidingWindowLimiter",
    "hubspot_source",
    "object_records",
]
