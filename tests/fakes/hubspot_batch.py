"""The HubSpot look-alike's batch routes: the object batch read (``propertiesWithHistory`` included) and
the v4 association batch read, both answering 207 with ``errors`` for what they cannot find. Mixed into
``FakeHubSpot``; evidence per behaviour in ``tests/fakes/hubspot.md``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.fakes.base import Request, Response
from tests.fakes.hubspot_records import Record, iso, ms

BATCH_READ_LIMIT = 100
ASSOCIATION_READ_LIMIT = 1_000
PRIMARY = {"category": "USER_DEFINED", "typeId": 7, "label": "Primary"}
"""A labelled association type the look-alike adds to each record's first association."""


class BatchRoutes:
    """``POST .../batch/read`` for objects and associations; mixed into ``FakeHubSpot``."""

    objects: dict[str, dict[int, Record]]
    links: dict[tuple[str, str], dict[int, list[int]]]
    association_page_size: int

    def _known(self, object_type: str) -> set[str]:
        raise NotImplementedError

    def _limit_headers(self) -> dict[str, str]:
        raise NotImplementedError

    @staticmethod
    def _error(status: int, category: str, message: str) -> Response:
        raise NotImplementedError

    def _batch_read(self, object_type: str, request: Request) -> Response:
        query = request.json() or {}
        inputs = query.get("inputs") or []
        if not 1 <= len(inputs) <= BATCH_READ_LIMIT:
            return self._error(400, "VALIDATION_ERROR", f"inputs must hold 1 to {BATCH_READ_LIMIT} ids")
        archived = request.param("archived", "false") == "true"
        names, known = list(query.get("properties") or []), self._known(object_type)
        with_history = [n for n in query.get("propertiesWithHistory") or [] if n in known]
        table = self.objects.get(object_type, {})
        results, missing = [], []
        for item in inputs:
            record = table.get(int(item["id"]))
            if record is None or (record.archived_ms is not None) != archived:
                missing.append(str(item["id"]))
            else:
                results.append(record.as_json(names, object_type, known))
                if with_history:
                    results[-1]["propertiesWithHistory"] = record.history_json(with_history)
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, **self._batch_times()}
        if not missing:
            return Response.json(body, headers=self._limit_headers())
        error = {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": "Could not get some "
            + object_type.upper()
            + " objects, they may be deleted or not exist. "
            "Check that ids are valid.",
            "context": {"ids": missing},
            "errors": [],
            "links": {},
        }
        body.update(numErrors=1, errors=[error])
        return Response.json(body, 207, headers=self._limit_headers())

    def _associations(self, from_type: str, to_type: str, request: Request) -> Response:
        inputs = (request.json() or {}).get("inputs") or []
        if len(inputs) > ASSOCIATION_READ_LIMIT:
            return self._error(
                400, "VALIDATION_ERROR", f"at most {ASSOCIATION_READ_LIMIT} inputs per batch read"
            )
        links = self.links.get((from_type, to_type), {})
        results, errors = [], []
        for item in inputs:
            targets = links.get(int(item["id"]), [])
            start = int(item.get("after") or 0)
            chunk = targets[start : start + self.association_page_size]
            if not chunk:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": f"No {to_type.rstrip('s')} is associated with {from_type.rstrip('s')} "
                        f"{item['id']}.",
                        "context": {
                            "fromObjectId": [str(item["id"])],
                            "fromObjectType": [from_type.rstrip("s")],
                            "toObjectType": [to_type.rstrip("s")],
                        },
                        "errors": [],
                        "links": {},
                    }
                )
                continue
            result: dict[str, Any] = {
                "from": {"id": str(item["id"])},
                "to": [
                    {
                        "toObjectId": int(t),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None},
                            *([PRIMARY] if t == targets[0] else []),
                        ],
                    }
                    for t in chunk
                ],
            }
            if start + len(chunk) < len(targets):
                result["paging"] = {"next": {"after": str(start + len(chunk)), "link": None}}
            results.append(result)
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, **self._batch_times()}
        if not errors:
            return Response.json(body, 200, headers=self._limit_headers())
        body.update(numErrors=len(errors), errors=errors)
        return Response.json(body, 207, headers=self._limit_headers())

    @staticmethod
    def _batch_times() -> dict[str, str]:
        now = iso(ms(dt.datetime.now(dt.UTC)))
        return {"startedAt": now, "completedAt": now}
