"""The HubSpot look-alike's reference data: owners, deal and ticket pipelines with stages, and custom
object schemas (``GET /crm/v3/owners``, ``/crm/v3/pipelines/{object}``, ``/crm/v3/schemas``).
Shapes follow ``HubSpot/hubspot-api-python`` (``crm/owners/models/public_owner.py``,
``crm/pipelines/models/pipeline.py``, ``pipeline_stage.py``, ``crm/schemas/models/object_schema.py``);
evidence per behaviour in ``tests/fakes/hubspot.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.fakes.base import Request, Response
from tests.fakes.hubspot_records import COMMON, EPOCH, FIRST_OWNER_ID, iso, ms

OWNERS_PAGE_LIMIT = 500
PORTAL_ID = 1234567


class ReferenceData:
    """Owners, pipelines and custom object schemas; mixed into ``FakeHubSpot``."""

    owners: list[dict[str, Any]]
    pipelines: dict[str, list[dict[str, Any]]]
    schemas: list[dict[str, Any]]
    custom_properties: dict[str, list[tuple[str, str, str]]]

    def clear_reference(self) -> None:
        self.owners, self.pipelines, self.schemas = [], {}, []

    # seeding ----------------------------------------------------------------------------------------
    def add_owners(self, count: int, *, archived: bool = False) -> list[str]:
        """``count`` owners (users); ``archived``: deactivated ones, listed only with ``archived=true``."""
        ids = []
        for _ in range(count):
            n = FIRST_OWNER_ID + len(self.owners)
            at = iso(ms(EPOCH))
            self.owners.append(
                {
                    "id": str(n),
                    "email": f"owner{n}@example.com",
                    "type": "PERSON",
                    "firstName": f"Owner{n}",
                    "lastName": "Example",
                    "userId": n + 1_000_000,
                    "userIdIncludingInactive": n + 1_000_000,
                    "createdAt": at,
                    "updatedAt": at,
                    "archived": archived,
                    "teams": [{"id": "7001", "name": "Sales", "primary": True}] if n % 2 else [],
                }
            )
            ids.append(str(n))
        return ids

    def add_pipeline(self, object_type: str, pipeline_id: str, label: str, stages: list[str]) -> None:
        """A pipeline and its stages (ids ``<pipeline>-<n>``; ``default``/``0`` are HubSpot's own ids)."""
        at = iso(ms(EPOCH))
        listed = self.pipelines.setdefault(object_type, [])
        rows = []
        for order, stage in enumerate(stages):
            if object_type == "deals":
                closed = stage.startswith("closed")
                metadata = {
                    "isClosed": str(closed).lower(),
                    "probability": "1.0" if stage == "closedwon" else "0.2",
                }
            else:
                metadata = {"ticketState": "CLOSED" if stage == "closed" else "OPEN"}
            rows.append(
                {
                    "id": stage if pipeline_id in ("default", "0") else f"{pipeline_id}-{order}",
                    "label": stage.title(),
                    "displayOrder": order,
                    "metadata": metadata,
                    "createdAt": at,
                    "updatedAt": at,
                    "archived": False,
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                }
            )
        listed.append(
            {
                "id": pipeline_id,
                "label": label,
                "displayOrder": len(listed),
                "stages": rows,
                "createdAt": at,
                "updatedAt": at,
                "archived": False,
            }
        )

    def add_custom_object(self, name: str, properties: list[tuple[str, str, str]]) -> str:
        """A custom object schema; returns its ``objectTypeId`` (``2-<n>``), the path its records use."""
        type_id = f"2-{9_000_000 + len(self.schemas)}"
        self.custom_properties[type_id] = [*properties, *COMMON]
        at = iso(ms(dt.datetime.now(dt.UTC)))
        self.schemas.append(
            {
                "id": type_id.split("-")[1],
                "name": name,
                "objectTypeId": type_id,
                "fullyQualifiedName": f"p{PORTAL_ID}_{name}",
                "labels": {"singular": name.title(), "plural": f"{name.title()}s"},
                "primaryDisplayProperty": properties[0][0] if properties else "hs_object_id",
                "requiredProperties": [],
                "searchableProperties": [],
                "secondaryDisplayProperties": [],
                "properties": [{"name": p, "type": k, "fieldType": f} for p, k, f in properties],
                "associations": [],
                "archived": False,
                "createdAt": at,
                "updatedAt": at,
            }
        )
        return type_id

    # serving ----------------------------------------------------------------------------------------
    def serve_reference(self, parts: list[str], request: Request) -> Response | None:
        """The answer for a reference route, or ``None`` when ``parts`` is not one."""
        if request.method != "GET" or parts[:2] != ["crm", "v3"]:
            return None
        if parts[2:] == ["owners"]:
            return self._owners(request)
        if parts[2:3] == ["pipelines"] and len(parts) == 4:
            if parts[3] not in ("deals", "tickets"):
                message = f"Unable to infer object type from: {parts[3]}"
                return Response.json(
                    {"status": "error", "message": message, "category": "VALIDATION_ERROR"}, 400
                )
            return Response.json({"results": self.pipelines.get(parts[3], [])})
        if parts[2:] == ["schemas"]:
            return Response.json({"results": self.schemas})
        return None

    def _owners(self, request: Request) -> Response:
        limit = int(request.param("limit", "100") or 100)
        if not 1 <= limit <= OWNERS_PAGE_LIMIT:
            return Response.json({"status": "error", "message": f"limit must be 1 to {OWNERS_PAGE_LIMIT}",
                                  "category": "VALIDATION_ERROR"}, 400)  # fmt: skip
        archived = request.param("archived", "false") == "true"
        listed = [o for o in self.owners if o["archived"] == archived]
        start = int(request.param("after") or 0)
        body: dict[str, Any] = {"results": listed[start : start + limit]}
        if start + limit < len(listed):
            link = f"https://api.hubapi.com/crm/v3/owners?after={start + limit}"
            body["paging"] = {"next": {"after": str(start + limit), "link": link}}
        return Response.json(body)
