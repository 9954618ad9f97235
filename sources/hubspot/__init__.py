"""HubSpot CRM objects a revenue team reads (contacts, companies, deals, tickets, products, line items,
calls, emails, meetings, notes, tasks by default; quotes and custom objects on request) with all their
properties, associations and archived (deleted) records, loaded incrementally; owners and deal and
ticket pipelines with their stages, replaced each run; property history on request.

Owner: data platform team (#data-platform).
API: HubSpot CRM v3 objects, search and properties, v4 associations
(https://developers.hubspot.com/docs/api/crm/understanding-the-crm), private-app token as Bearer.
CRM objects load with ``write_disposition="merge"`` on ``id``: the first run reads every record, later
runs the records changed since the last successful load, both through the search API (see
``client.py`` and docs/hubspot.md for the provider behaviours relied on).
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
