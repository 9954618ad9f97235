"""HubSpot's reference data: owners, deal and ticket pipelines with their stages, and the custom object
schemas. Small lists read whole each run (``replace``): they say who owns a record
(``hubspot_owner_id``) and which stage it is in (``dealstage``, ``hs_pipeline_stage``).

Endpoints (shapes from ``HubSpot/hubspot-api-python`` models, see ``tests/fakes/hubspot.md``):
``GET /crm/v3/owners?archived=`` (paged by ``after``), ``GET /crm/v3/pipelines/{deals|tickets}`` and
``GET /crm/v3/schemas`` (not paged).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

from dlt.common.typing import TDataItems

from sources.hubspot.client import PAGE_SIZE, HubSpotClient
from sources.hubspot.errors import HubSpotError

PIPELINE_OBJECTS: Final = ("deals", "tickets")
"""The objects whose pipelines (and stages) are loaded."""
REFERENCE_OBJECTS: Final = frozenset({"owners", "pipelines"})
"""Names in ``objects`` that are reference lists rather than CRM objects."""
OWNER_COLUMNS: Final[dict[str, Any]] = {
    "id": {"data_type": "text", "nullable": False},
    "user_id": {"data_type": "bigint"},
    "created_at": {"data_type": "timestamp"},
    "updated_at": {"data_type": "timestamp"},
    "archived": {"data_type": "bool", "nullable": False},
}
PIPELINE_COLUMNS: Final[dict[str, Any]] = {
    "object_type": {"data_type": "text", "nullable": False},
    "id": {"data_type": "text", "nullable": False},
    "created_at": {"data_type": "timestamp"},
    "updated_at": {"data_type": "timestamp"},
    "archived": {"data_type": "bool"},
}


def owners(client: HubSpotClient) -> Iterator[TDataItems]:
    """Every owner, active then archived (``archived = true``: deactivated users whose ids records
    still carry)."""
    for archived in (False, True):
        params = {"limit": PAGE_SIZE, "archived": str(archived).lower()}
        for page in client.pages("crm/v3/owners", params):
            yield [{**owner, "archived": bool(owner.get("archived", archived))} for owner in page]


def pipelines(client: HubSpotClient, object_types: Sequence[str] = PIPELINE_OBJECTS) -> Iterator[TDataItems]:
    """The pipelines of ``object_types`` with their stages (nested table ``pipelines__stages``)."""
    for object_type in object_types:
        what = f"HubSpot {object_type} pipelines"
        rows = client.results(f"crm/v3/pipelines/{object_type}", what)
        for row in rows:
            if not isinstance(row.get("id"), str) or not isinstance(row.get("stages", []), list):
                raise HubSpotError(f"{what}: a pipeline without an id or with stages that are not a list")
        yield [
            {"object_type": object_type, **row, "stages": [_stage(s) for s in row.get("stages") or []]}
            for row in rows
        ]


def _stage(stage: dict[str, Any]) -> dict[str, Any]:
    """A stage with its ``metadata`` (deals: ``isClosed``, ``probability``; tickets: ``ticketState``) as
    ``metadata__*`` columns rather than a JSON column."""
    metadata = stage.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise HubSpotError(f"HubSpot pipeline stage {stage.get('id')}: metadata is not an object")
    flat = {k: v for k, v in stage.items() if k != "metadata"}
    return flat | {f"metadata__{key}": value for key, value in metadata.items()}


def custom_object_types(client: HubSpotClient, wanted: Sequence[str] | str) -> dict[str, str]:
    """``{table name: object type id}`` for the custom objects ``wanted`` (``"*"``: all of them), found
    in ``GET /crm/v3/schemas`` by name, ``objectTypeId`` or ``fullyQualifiedName``."""
    schemas = client.results("crm/v3/schemas", "HubSpot custom object schemas")
    found: dict[str, str] = {}
    names = None if wanted == "*" else {str(w) for w in wanted}
    for schema in schemas:
        if not isinstance(schema.get("name"), str) or not isinstance(schema.get("objectTypeId"), str):
            raise HubSpotError("HubSpot custom object schemas: a schema without a name or objectTypeId")
        if names is None or _keys(schema) & names:
            found[schema["name"].lower()] = schema["objectTypeId"]
    missing = sorted((names or set()) - {k for s in schemas for k in _keys(s)})
    if missing:
        known = ", ".join(sorted(str(s.get("name")) for s in schemas)) or "none"
        raise ValueError(
            f"sources.hubspot.custom_objects: {', '.join(missing)} not found in this portal's custom "
            f"object schemas (it has: {known})"
        )
    return found


def _keys(schema: dict[str, Any]) -> set[str]:
    return {str(schema.get(k)) for k in ("name", "objectTypeId", "fullyQualifiedName")}
