"""Property history: every value a chosen property has had, read for the records that changed.

Opt-in per object and property (``property_history = {deals = ["dealstage", "amount"]}``). HubSpot
returns a property's history with the batch read's ``propertiesWithHistory`` (``POST
/crm/v3/objects/{object}/batch/read``, 100 ids a request): ``{property: [{value, timestamp, sourceType,
sourceId, sourceLabel, updatedByUserId}]}``, newest first. Each entry becomes one row of
``<object>__property_history``, keyed by record, property and timestamp, so reading a record's history
again (it changed again) adds only the new entries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

from dlt.common.typing import TDataItems

from sources.hubspot.client import PAGE_SIZE, HubSpotClient, to_ms
from sources.hubspot.errors import HubSpotError
from sources.hubspot.rows import as_datetime

HISTORY_KEY: Final = ("object_id", "property", "timestamp")
HISTORY_COLUMNS: Final[dict[str, Any]] = {
    "object_id": {"data_type": "text", "nullable": False},
    "property": {"data_type": "text", "nullable": False},
    "timestamp": {"data_type": "timestamp", "nullable": False},
    "value": {"data_type": "text"},
    "source_type": {"data_type": "text"},
    "source_id": {"data_type": "text"},
    "source_label": {"data_type": "text"},
    "updated_by_user_id": {"data_type": "bigint"},
}
NOT_FOUND: Final = frozenset({"OBJECT_NOT_FOUND"})
"""A record deleted between the search and the history read: nothing to read, not a failure."""


def history_table(object_name: str) -> str:
    return f"{object_name}__property_history"


def history_records(
    rows: TDataItems, client: HubSpotClient, api_name: str, properties: Sequence[str]
) -> Iterator[TDataItems]:
    """History rows of ``properties`` for the live records among ``rows`` (a batch the object's resource
    yielded: archived and merged-away rows are skipped, they have no live history to read)."""
    ids = [r["id"] for r in (rows if isinstance(rows, list) else [rows]) if not r.get("archived")]
    what = f"HubSpot {api_name} property history"
    for start in range(0, len(ids), PAGE_SIZE):
        body = {
            "inputs": [{"id": i} for i in ids[start : start + PAGE_SIZE]],
            "properties": [],
            "propertiesWithHistory": list(properties),
        }
        path = f"crm/v3/objects/{api_name}/batch/read?archived=false"
        found = []
        for record in client.post(path, what, body, benign=NOT_FOUND):
            found += history_rows(record, what)
        if found:
            yield found


def history_rows(record: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """One row per history entry of one batch-read record."""
    history = record.get("propertiesWithHistory") or {}
    if not isinstance(history, dict):
        raise HubSpotError(
            f"{what}: record {record.get('id')} has propertiesWithHistory that is not an object"
        )
    rows = []
    for name, entries in history.items():
        if not isinstance(entries, list):
            raise HubSpotError(f"{what}: record {record.get('id')} history of {name} is not a list")
        for entry in entries:
            user = entry.get("updatedByUserId")
            rows.append(
                {
                    "object_id": str(record["id"]),
                    "property": name,
                    "timestamp": as_datetime(to_ms(entry.get("timestamp"))),
                    "value": entry.get("value"),
                    "source_type": entry.get("sourceType"),
                    "source_id": entry.get("sourceId"),
                    "source_label": entry.get("sourceLabel"),
                    "updated_by_user_id": int(user) if user not in (None, "") else None,
                }
            )
    return rows
