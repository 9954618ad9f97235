"""dlt source for HubSpot CRM objects (see the package docstring for owner and API documentation)."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import dlt
import pendulum
from dlt.common.schema.typing import TSchemaContractDict
from dlt.common.typing import TDataItems
from dlt.extract.resource import DltResource

from sources.hubspot.client import SEARCH_RESULT_CAP, HubSpotClient
from sources.hubspot.history import HISTORY_COLUMNS, HISTORY_KEY, history_records, history_table
from sources.hubspot.reference import (
    OWNER_COLUMNS,
    PIPELINE_COLUMNS,
    REFERENCE_OBJECTS,
    custom_object_types,
    owners,
    pipelines,
)
from sources.hubspot.rows import MERGED_IDS, merged_away, to_row

DEFAULT_BASE_URL: Final = "https://api.hubapi.com"
ENGAGEMENTS: Final = ("calls", "emails", "meetings", "notes", "tasks")
DEFAULT_OBJECTS: Final = (
    "contacts",
    "companies",
    "deals",
    "tickets",
    "products",
    "line_items",
    *ENGAGEMENTS,
    "owners",
    "pipelines",
)
"""What a revenue team reads: the CRM records, who owns them and which pipeline stage they are in."""
LAST_MODIFIED: Final[dict[str, str]] = {"contacts": "lastmodifieddate"}
"""The last-modified property per object; every other object uses ``hs_lastmodifieddate``."""
TO_RECORDS: Final = ["contacts", "companies", "deals"]
DEFAULT_ASSOCIATIONS: Final[dict[str, list[str]]] = {
    "contacts": ["companies"],
    "deals": ["contacts", "companies"],
    "tickets": TO_RECORDS,
    "line_items": ["deals"],
    "quotes": TO_RECORDS,
    **{engagement: TO_RECORDS for engagement in ENGAGEMENTS},
}
"""Association directions read by default (only towards objects that are loaded too)."""
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


@dlt.source(section="hubspot", name="hubspot", max_table_nesting=1)
def hubspot_source(
    api_key: str = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    objects: Sequence[str] = DEFAULT_OBJECTS,
    custom_objects: Any = None,
    property_history: Any = None,
    include_properties: Sequence[str] | None = None,
    exclude_properties: Sequence[str] | None = None,
    associations: dict[str, list[str]] | None = None,
    track_archived: bool = True,
    search_lag_seconds: int = 300,
    requests_per_10_seconds: int = 100,
    search_requests_per_second: int = 4,
    search_result_cap: int = SEARCH_RESULT_CAP,
    parallel: bool = True,
    request_counts: dict[str, int] | None = None,
) -> list[DltResource]:
    """One merge resource per HubSpot CRM object, keyed on ``id``, and the reference lists.

    Config (``[sources.hubspot]`` or ``SOURCES__HUBSPOT__*``):
        api_key: private-app token (secret), sent as ``Authorization: Bearer``.
        base_url: API root, ``https://api.hubapi.com`` by default.
        objects: what to load: CRM objects (contacts, companies, deals, tickets, products, line_items,
            quotes, calls, emails, meetings, notes, tasks, or any object type id) and the reference
            lists ``owners`` and ``pipelines``; ``DEFAULT_OBJECTS`` (the revenue-team set) by default.
        custom_objects: custom objects from ``GET /crm/v3/schemas``, opt-in: ``"*"`` for all, or a
            list of names, object type ids (``2-1234567``) or fully qualified names.
        property_history: ``{object: [property, ...]}`` (or that as JSON text): every value those
            properties have had, for the records read this run, into ``<object>__property_history``.
        include_properties / exclude_properties: ``fnmatch`` patterns over property names; all
            properties by default, so custom properties arrive without code changes.
        associations: ``{object: [to_object, ...]}``; defaults to ``DEFAULT_ASSOCIATIONS`` limited to
            the loaded objects. Each lands in the nested table ``<object>__associated_<to_object>``.
        track_archived: also read archived (deleted) records and flag them ``archived = true``.
        search_lag_seconds: changes newer than this are left for the next run (HubSpot's search index
            trails writes by a few seconds); the incremental window is ``[cursor, now - lag)``.
        requests_per_10_seconds / search_requests_per_second: client-side rate limits, shared by
            every object of the run.
        search_result_cap: results one search query may return (HubSpot: 10,000).
        parallel: extract the objects concurrently (dlt's ``parallelized`` resources, ``[extract]
            workers`` threads). They share one client, so the rate limits hold for the app as a whole;
            each object keeps its own cursor in its own resource state.
        request_counts: a dict the client counts its requests into, by object (``requests_by_object``),
            for the run report; not configuration.
    """
    objects = [objects] if isinstance(objects, str) else list(objects)
    if not objects and not custom_objects:
        raise ValueError("sources.hubspot.objects is empty; name at least one CRM object, e.g. contacts")
    history = _history_config(property_history)
    client = HubSpotClient(
        api_key,
        base_url,
        requests_per_10_seconds=requests_per_10_seconds,
        search_requests_per_second=search_requests_per_second,
        search_result_cap=search_result_cap,
    )
    if request_counts is not None:
        client.count_into(request_counts)
    # table name -> the name the API knows it by (a custom object's type id)
    crm = {name: name for name in objects if name not in REFERENCE_OBJECTS}
    if custom_objects:  # typed Any: dlt's config takes "*", a list or JSON text of a list
        wanted = "*" if custom_objects == "*" else _as_list(custom_objects)
        crm.update(custom_object_types(client, wanted))
    unknown = sorted(set(history) - set(crm))
    if unknown:
        raise ValueError(
            f"sources.hubspot.property_history names {', '.join(unknown)}, which this run does not load; "
            "add it to sources.hubspot.objects (or custom_objects)"
        )
    if associations is None:
        associations = {
            name: [to for to in targets if to in crm] for name, targets in DEFAULT_ASSOCIATIONS.items()
        }
    resources = []
    for name, api_name in crm.items():
        records = dlt.resource(
            object_records,
            name=name,
            write_disposition="merge",
            primary_key="id",
            columns=COLUMNS,
            parallelized=parallel,
            schema_contract=SCHEMA_CONTRACT,
        )(
            client,
            api_name,
            include_properties=list(include_properties or []),
            exclude_properties=list(exclude_properties or []),
            associate_with=[to for to in associations.get(name, []) if to in crm],
            track_archived=track_archived,
            search_lag_seconds=search_lag_seconds,
        )
        resources.append(records)
        if name in history:
            resources.append(
                dlt.transformer(
                    history_records,
                    data_from=records,
                    name=history_table(name),
                    write_disposition="merge",
                    primary_key=list(HISTORY_KEY),
                    columns=HISTORY_COLUMNS,
                    schema_contract=SCHEMA_CONTRACT,
                )(client, api_name, history[name])
            )
    if "owners" in objects:
        resources.append(
            dlt.resource(
                owners,
                name="owners",
                write_disposition="replace",
                columns=OWNER_COLUMNS,
                schema_contract=SCHEMA_CONTRACT,
            )(client)
        )
    if "pipelines" in objects:
        resources.append(
            dlt.resource(
                pipelines,
                name="pipelines",
                write_disposition="replace",
                primary_key=["object_type", "id"],
                columns=PIPELINE_COLUMNS,
                schema_contract=SCHEMA_CONTRACT,
            )(client)
        )
    return resources


def _as_list(value: Any) -> list[str]:
    """A list of names from a list, JSON text of one, or comma-separated text."""
    if isinstance(value, str):
        text = value.strip()
        return (
            [str(v) for v in json.loads(text)]
            if text.startswith("[")
            else [p.strip() for p in text.split(",") if p.strip()]
        )
    if not isinstance(value, list | tuple):
        raise ValueError(f'sources.hubspot.custom_objects must be "*" or a list of names, not {value!r}')
    return [str(v) for v in value]


def _history_config(value: Any) -> dict[str, list[str]]:
    """``property_history`` as a dict of non-empty property lists (JSON text accepted, as env vars give)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(
                'sources.hubspot.property_history is not JSON; write it like {"deals": ["dealstage"]}'
            ) from None
    if not isinstance(value, dict) or not all(
        isinstance(v, list) and v and all(isinstance(p, str) for p in v) for v in value.values()
    ):
        raise ValueError(
            "sources.hubspot.property_history must map objects to lists of property names, "
            'like {"deals": ["dealstage", "amount"]}'
        )
    return {str(k): list(v) for k, v in value.items()}


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
