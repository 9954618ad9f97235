"""HubSpot records as rows: the flat row of a CRM record with typed property values, and the rows that
retire records merged into another."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import pendulum

from sources.hubspot.client import to_ms
from sources.hubspot.errors import HubSpotError
from utils.http import sample_of

METADATA: Final = ("id", "created_at", "updated_at", "archived", "archived_at", "merged_into_id")
"""Row columns a property of the same name would overwrite: such properties load as ``property_<name>``."""
MERGED_IDS: Final = "hs_merged_object_ids"
"""The property in which HubSpot lists the ids merged into a record (semicolon-separated)."""
INTEGER_PROPERTIES: Final = frozenset({"hs_object_id"})
"""Number properties that are identifiers: loaded as integers rather than decimals."""
MAX_DECIMAL_DIGITS: Final = 28
"""Digits a number property may have on either side of the point to load as a decimal (dlt's default
decimal is 38 digits with 9 after the point); longer or non-finite values load as text."""


def merged_away(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows retiring the records merged into ``records`` (listed in ``hs_merged_object_ids``)."""
    rows = []
    for record in records:
        listed = str((record.get("properties") or {}).get(MERGED_IDS) or "")
        when = as_datetime(record.get("updatedAt"))
        for merged_id in dict.fromkeys(i.strip() for i in listed.replace(",", ";").split(";")):
            if merged_id and merged_id != str(record["id"]):
                rows.append(
                    {
                        "id": merged_id,
                        "created_at": None,
                        "updated_at": when,
                        "archived": True,
                        "archived_at": when,
                        "merged_into_id": str(record["id"]),
                    }
                )
    return rows


def to_row(record: dict[str, Any], kinds: dict[str, str], archived: bool = False) -> dict[str, Any]:
    """A flat row: ``id``, timestamps, the archived flag, then every property, typed."""
    flag = record.get("archived", archived)
    properties = record.get("properties") or {}
    if not isinstance(flag, bool) or not isinstance(properties, dict):
        raise HubSpotError(
            f"HubSpot record {sample_of(record.get('id'))}: 'archived' must be true or false and "
            f"'properties' an object (got {sample_of(flag)} and a {type(properties).__name__})"
        )
    row: dict[str, Any] = {
        "id": str(record["id"]),
        "created_at": as_datetime(record.get("createdAt")),
        "updated_at": as_datetime(record.get("updatedAt")),
        "archived": flag,
        "archived_at": as_datetime(record.get("archivedAt")),
        "merged_into_id": None,
    }
    for name, value in properties.items():
        row[f"property_{name}" if name in METADATA else name] = typed(
            value, "integer" if name in INTEGER_PROPERTIES else kinds.get(name, "string")
        )
    return row


def typed(value: Any, kind: str) -> Any:
    """HubSpot sends every property value as text; type it from the property's declared type."""
    if value is None or (value == "" and kind != "string"):
        return None
    text = str(value)
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            number = Decimal(text)
            # past what a warehouse decimal holds (or NaN/Infinity): kept as the text HubSpot sent
            return number if number.is_finite() and abs(number.adjusted()) <= MAX_DECIMAL_DIGITS else text
        if kind == "bool":
            return text.lower() == "true"
        if kind == "datetime":
            return as_datetime(text)
        if kind == "date":
            parsed = as_datetime(text)
            return parsed.date() if parsed else None
    except (InvalidOperation, ValueError, HubSpotError, pendulum.parsing.exceptions.ParserError):
        return text  # never drop a value: an unparseable one lands as text (a dlt variant column)
    return text


def as_datetime(value: Any) -> dt.datetime | None:
    """A UTC datetime from HubSpot's ISO 8601 text or epoch milliseconds (``None`` for none)."""
    if value in (None, ""):
        return None
    return pendulum.from_timestamp(to_ms(value) / 1000, tz="UTC")
