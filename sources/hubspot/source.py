"""dlt source for HubSpot CRM objects (see the package docstring for owner and API documentation)."""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import dlt
import pendulum
from dlt.common.schema.typing import TSchemaContractDict
from dlt.common.typing import TDataItems
from dlt.extract.resource import DltResource

from sources.hubspot.client import SEARCH_RESULT_CAP, HubSpotClient, HubSpotError, to_ms
from utils.http import sample_of

DEFAULT_BASE_URL: Final = "https://api.hubapi.com"
DEFAULT_OBJECTS: Final = ("contacts", "companies", "deals")
LAST_MODIFIED: Final[dict[str, str]] = {"contacts": "lastmodifieddate"}
"""The last-modified property per object; every other object uses ``hs_lastmodifieddate``."""
DEFAULT_ASSOCIATIONS: Final[dict[str, list[str]]] = {
    "contacts": ["companies"],
    "deals": ["contacts", "companies"],
    "tickets": ["contacts", "companies"],
}
"""Association directions read by default (only towards objects that are loaded too)."""
METADATA: Final = ("id", "created_at", "updated_at", "archived", "archived_at", "merged_into_id")
COLUMNS: Final[dict[str, Any]] = {
    "id": {"data_type": "text", "nullable": False},
    "created_at": {"data_type": "timestamp"},
    "updated_at": {"data_type": "timestamp"},
    # When one load holds a record twice (changed, then deleted during the run), the archived copy wins.
    "archived": {"data_type": "bool", "nullable": False, "dedup_sort": "desc"},
    "archived_at": {"data_type": "timestamp"},
    # Set on a record merged into another: it vanished from HubSpot, the survivor carries its id.
    "merged_into_id": {"data_type": "text"},
    "hs_merged_object_ids": {"data_type": "text"},  # null until a first merge; declared so it exists
}
SCHEMA_CONTRACT: Final[TSchemaContractDict] = {"tables": "evolve", "columns": "evolve", "data_type": "evolve"}
"""Custom properties and objects arrive without code changes (new columns and tables), and a value
that does not fit its property's type lands in a variant column rather than being dropped or failing."""
STATE_KEY: Final = "modified_since_ms"
MERGED_IDS: Final = "hs_merged_object_ids"
"""The property in which HubSpot lists the ids merged into a record (semicolon-separated)."""
INTEGER_PROPERTIES: Final = frozenset({"hs_object_id"})
MAX_DECIMAL_DIGITS: Final = 28
"""Digits a number property may have on either side of the point to load as a decimal (dlt's default
decimal is 38 digits with 9 after the point); longer or non-finite values load as text."""
"""Number properties that are identifiers: loaded as integers rather than decimals."""


@dlt.source(section="hubspot", name="hubspot", max_table_nesting=1)
def hubspot_source(
    api_key: str = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    objects: Sequence[str] = DEFAULT_OBJECTS,
    include_properties: Sequence[str] | None = None,
    exclude_properties: Sequence[str] | None = None,
    associations: dict[str, list[str]] | None = None,
    track_archived: bool = True,
    search_lag_seconds: int = 300,
    requests_per_10_seconds: int = 100,
    search_requests_per_second: int = 4,
    search_result_cap: int = SEARCH_RESULT_CAP,
    parallel: bool = True,
) -> list[DltResource]:
    """One merge resource per HubSpot CRM object, keyed on ``id``.

    Config (``[sources.hubspot]`` or ``SOURCES__HUBSPOT__*``):
        api_key: private-app token (secret), sent as ``Authorization: Bearer``.
        base_url: API root, ``https://api.hubapi.com`` by default.
        objects: CRM objects to load (contacts, companies, deals, tickets, products, custom object ids).
        include_properties / exclude_properties: ``fnmatch`` patterns over property names; all
            properties by default, so custom properties arrive without code changes.
        associations: ``{object: [to_object, ...]}``; defaults to ``DEFAULT_ASSOCIATIONS`` limited to
            the loaded objects. Each lands in the nested table ``<object>__associated_<to_object>``.
        track_archived: also read archived (deleted) records and flag them ``archived = true``.
        search_lag_seconds: changes newer than this are left for the next run (HubSpot's search index
            trails writes by a few seconds); the incremental window is ``[cursor, now - lag)``.
        requests_per_10_seconds / search_requests_per_second: client-side rate limits.
        search_result_cap: results one search query may return (HubSpot: 10,000).
        parallel: extract the objects concurrently (dlt's ``parallelized`` resources, ``[extract]
            workers`` threads). They share one client, so the rate limits hold for the app as a whole;
            each object keeps its own cursor in its own resource state.
    """
    objects = [objects] if isinstance(objects, str) else list(objects)
    if not objects:
        raise ValueError("sources.hubspot.objects is empty; name at least one CRM object, e.g. contacts")
    if associations is None:
        associations = {
            name: [to for to in targets if to in objects]
            for name, targets in DEFAULT_ASSOCIATIONS.items()
            if name in objects
        }
    client = HubSpotClient(
        api_key,
        base_url,
        requests_per_10_seconds=requests_per_10_seconds,
        search_requests_per_second=search_requests_per_second,
        search_result_cap=search_result_cap,
    )
    return [
        dlt.resource(
            object_records,
            name=object_type,
            write_disposition="merge",
            primary_key="id",
            columns=COLUMNS,
            parallelized=parallel,
            schema_contract=SCHEMA_CONTRACT,
        )(
            client,
            object_type,
            include_properties=list(include_properties or []),
            exclude_properties=list(exclude_properties or []),
            associate_with=list(associations.get(object_type, [])),
            track_archived=track_archived,
            search_lag_seconds=search_lag_seconds,
        )
        for object_type in objects
    ]


def object_records(
    client: HubSpotClient,
    object_type: str,
    *,
    include_properties: list[str],
    exclude_properties: list[str],
    associate_with: list[str],
    track_archived: bool,
    search_lag_seconds: int,
) -> Iterator[TDataItems]:
    """Records of one object: everything on the first run, then what changed since the last load.

    A record merged into another vanishes from HubSpot (it is not archived): when a changed survivor
    lists it in ``hs_merged_object_ids``, its row is flagged like an archived one (``archived``,
    ``archived_at`` = the survivor's modified time, ``merged_into_id``) so it stops being live.

    The cursor (``modified_since_ms`` in the resource state) is written only after the last record
    was read, and dlt stores it with the load package, so it advances only with a successful load.
    """
    state = dlt.current.resource_state()
    cursor_property = LAST_MODIFIED.get(object_type, "hs_lastmodifieddate")
    discovered = client.properties(object_type)
    kinds = {str(p["name"]): str(p.get("type") or "string") for p in discovered}
    selected = select_properties(kinds, include_properties, exclude_properties, cursor_property)
    until_ms = int(pendulum.now("UTC").timestamp() * 1000) - search_lag_seconds * 1000
    since_ms: int | None = state.get(STATE_KEY)

    if since_ms is None:
        pages = client.search_all(object_type, selected)
    elif since_ms < until_ms:
        pages = client.search_modified(object_type, cursor_property, selected, since_ms, until_ms)
    else:
        pages, until_ms = iter(()), since_ms
    for batch in _batches(pages):
        rows = [to_row(record, kinds) for record in batch]
        for target in associate_with:
            linked = client.associations(object_type, target, [row["id"] for row in rows])
            for row in rows:
                row[f"associated_{target}"] = linked.get(row["id"], [])
        yield rows
        if since_ms is not None:  # a full load never held the merged-away records
            live = {row["id"] for row in rows}
            retired = [row for row in merged_away(batch) if row["id"] not in live]
            if retired:
                yield retired

    if track_archived:
        for page in client.list_objects(object_type, selected, archived=True):
            yield [to_row(record, kinds, archived=True) for record in page]
    state[STATE_KEY] = until_ms


def select_properties(
    kinds: dict[str, str], include: Sequence[str], exclude: Sequence[str], cursor_property: str
) -> list[str]:
    """Property names to request: all (or those matching ``include``) minus ``exclude``."""
    names = [n for n in kinds if not include or any(fnmatch.fnmatchcase(n, p) for p in include)]
    names = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in exclude)]
    merges = [MERGED_IDS] if MERGED_IDS in kinds else []  # needed to retire merged-away records
    return sorted({*names, cursor_property, *merges})


def merged_away(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows retiring the records merged into ``records`` (listed in ``hs_merged_object_ids``)."""
    rows = []
    for record in records:
        listed = str((record.get("properties") or {}).get(MERGED_IDS) or "")
        when = _datetime(record.get("updatedAt"))
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
        "created_at": _datetime(record.get("createdAt")),
        "updated_at": _datetime(record.get("updatedAt")),
        "archived": flag,
        "archived_at": _datetime(record.get("archivedAt")),
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
            return _datetime(text)
        if kind == "date":
            parsed = _datetime(text)
            return parsed.date() if parsed else None
    except (InvalidOperation, ValueError, HubSpotError, pendulum.parsing.exceptions.ParserError):
        return text  # never drop a value: an unparseable one lands as text (a dlt variant column)
    return text


def _datetime(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    return pendulum.from_timestamp(to_ms(value) / 1000, tz="UTC")


def _batches(pages: Iterable[list[dict[str, Any]]], size: int = 1_000) -> Iterator[list[dict[str, Any]]]:
    """Regroup pages of 100 into batches of up to ``size``: one association read per batch."""
    batch: list[dict[str, Any]] = []
    for page in pages:
        batch += page
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
