"""A look-alike of HubSpot's CRM API (https://developers.hubspot.com/docs/api/crm), served on 127.0.0.1.

It follows what the real API does on an ordinary day, not only what the reference pages say: each
behaviour and its evidence (HubSpot's OpenAPI models in ``HubSpot/hubspot-api-python``, HubSpot's
developer docs, other connectors' bug reports) is listed in ``tests/fakes/hubspot.md``. In short:

- ``GET /crm/v3/properties/{object}``: the object's properties; a real portal has several hundred
  (:meth:`FakeHubSpot.add_portal_properties` pads an object to a realistic count);
- ``GET /crm/v3/objects/{object}?limit=&after=&properties=&archived=``: pages of at most 100 by id;
  ``archived=true`` lists the recycle bin; a request line over ``max_request_line`` characters
  (about 16,000 at HubSpot's edge) answers 414 with an HTML body, before authentication;
- ``POST /crm/v3/objects/{object}/batch/read?archived=``: at most 100 ids, properties in the body;
  ids it cannot find come back in ``errors`` with HTTP 207;
- ``POST /crm/v3/objects/{object}/search``: filters, one sort, ``limit`` up to 200, offset ``after``,
  at most ``search_cap`` (10,000) results per query, never archived records;
- ``POST .../batch/read`` with ``propertiesWithHistory``: each property's values, newest first;
- ``GET /crm/v3/owners``, ``/crm/v3/pipelines/{deals,tickets}``, ``/crm/v3/schemas`` (custom objects):
  reference data, in ``hubspot_reference.py``; records and search filters in ``hubspot_records.py``;
- ``POST /crm/v4/associations/{from}/{to}/batch/read``: at most 1,000 inputs; ids without
  associations come back in ``errors`` (``crm.associations.NO_ASSOCIATIONS_FOUND``) with HTTP 207;
- :meth:`FakeHubSpot.merge`: the merged-away record vanishes from every endpoint (it is not
  archived); the survivor lists it in ``hs_merged_object_ids`` and gets a new modified time;
- errors ``{status, message, correlationId, category}`` (401, 403 ``MISSING_SCOPES``, 400, 404);
  enforced limits (``burst_limit`` per 10 s, ``search_limit`` per second) answer 429 with HubSpot's
  ``RATE_LIMIT`` body and, like HubSpot often does, without ``Retry-After`` unless ``retry_after`` is
  set; ``X-HubSpot-RateLimit-*`` headers on every answer.

Run it by hand::

    uv run python -m tests.fakes.hubspot --port 8766 --contacts 1000 --contact-properties 600
"""

from __future__ import annotations

import argparse
import datetime as dt
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tests.fakes.base import FakeApi, Request, Response
from tests.fakes.hubspot_batch import BatchRoutes
from tests.fakes.hubspot_records import (
    CREATED,
    EPOCH,
    LAST_MODIFIED,
    MERGED_IDS,
    PROPERTIES,
    Record,
    iso,
    matches,
    ms,
    sample,
    value,
)
from tests.fakes.hubspot_reference import ReferenceData

TOKEN = "pat-eu1-fake-token-0000"
MAX_REQUEST_LINE = 16_000
"""Request lines longer than this get 414 at HubSpot's edge (about 16,000 characters reported)."""


@dataclass
class FakeHubSpot(FakeApi, ReferenceData, BatchRoutes):
    """The look-alike. Seed it with :meth:`add`, change it with :meth:`modify`, :meth:`archive`."""

    token: str = TOKEN
    search_cap: int = 10_000
    association_page_size: int = 500
    burst_limit: int | None = None
    search_limit: int | None = None
    retry_after: int | None = None
    """``Retry-After`` seconds on the look-alike's own 429s; ``None`` (HubSpot's usual) sends none."""
    max_request_line: int = MAX_REQUEST_LINE
    denied_scopes: set[str] = field(default_factory=set)
    objects: dict[str, dict[int, Record]] = field(default_factory=dict)
    links: dict[tuple[str, str], dict[int, list[int]]] = field(default_factory=dict)
    custom_properties: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()
        self._next_id = 1000
        self._sent: deque[float] = deque()
        self._searches: deque[float] = deque()
        self._limit_lock = threading.Lock()
        self.throttled = 0
        self.clear_reference()

    # seeding ----------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every record, link and setting (the server keeps running)."""
        self.reset()
        self.objects.clear()
        self.links.clear()
        self.custom_properties.clear()
        self.clear_reference()
        self.denied_scopes.clear()
        self.search_cap, self.association_page_size = 10_000, 500
        self.burst_limit = self.search_limit = self.retry_after = None
        self.max_request_line = MAX_REQUEST_LINE
        self.token, self.throttled, self._next_id = TOKEN, 0, 1000

    def add(
        self, object_type: str, count: int, *, start: dt.datetime = EPOCH, step_ms: int = 1_000
    ) -> list[int]:
        """Create ``count`` records modified ``step_ms`` apart from ``start`` (0: all at one instant)."""
        table = self.objects.setdefault(object_type, {})
        ids = []
        for n in range(count):
            self._next_id += 1
            at = ms(start) + n * step_ms
            record = Record(self._next_id, {}, at, at)
            record.change(sample(object_type, self._next_id), at)
            table[self._next_id] = record
            self._stamp(object_type, record, at)
            ids.append(self._next_id)
        return ids

    def modify(
        self, object_type: str, ids: list[int], at: dt.datetime | None = None, **properties: str | None
    ) -> None:
        """Change records (default: now), which moves their last-modified time to ``at``."""
        when = ms(at or dt.datetime.now(dt.UTC))
        for record_id in ids:
            record = self.objects[object_type][record_id]
            record.change(properties, when)
            self._stamp(object_type, record, when)

    def archive(self, object_type: str, ids: list[int], at: dt.datetime | None = None) -> None:
        """Delete records to the recycle bin: like HubSpot, the last-modified time does not change."""
        for record_id in ids:
            self.objects[object_type][record_id].archived_ms = ms(at or dt.datetime.now(dt.UTC))

    def restore(self, object_type: str, ids: list[int]) -> None:
        """Bring records back from the recycle bin (this counts as a change, as in HubSpot)."""
        for record_id in ids:
            self.objects[object_type][record_id].archived_ms = None
        self.modify(object_type, ids)

    def merge(self, object_type: str, primary: int, merged: int, at: dt.datetime | None = None) -> None:
        """Merge ``merged`` into ``primary`` as HubSpot does: the merged-away record vanishes from every
        endpoint (it is not archived), its associations move to the survivor, and the survivor lists it
        (and whatever had been merged into it) in ``hs_merged_object_ids`` with a new modified time."""
        table = self.objects[object_type]
        gone = table.pop(merged)
        survivor = table[primary]
        ids = [i for i in (survivor.properties.get(MERGED_IDS) or "").split(";") if i]
        ids += [str(merged), *[i for i in (gone.properties.get(MERGED_IDS) or "").split(";") if i]]
        for (from_type, to_type), links in self.links.items():
            if from_type == object_type and merged in links:
                moved = [t for t in links.pop(merged) if t not in links.get(primary, [])]
                links.setdefault(primary, []).extend(moved)
            if to_type == object_type:  # links towards the merged-away record now point at the survivor
                for targets in links.values():
                    if merged in targets:
                        targets[:] = list(dict.fromkeys(primary if t == merged else t for t in targets))
        self.modify(object_type, [primary], at, **{MERGED_IDS: ";".join(dict.fromkeys(ids))})

    def add_portal_properties(self, object_type: str, total: int) -> list[str]:
        """Pad ``object_type`` to ``total`` properties with names like a real portal's (HubSpot's own
        ``hs_*`` analytics and sales properties and custom ones, 20 to 45 characters), set on every
        record. Returns the names added."""
        stems = ("hs_analytics_source_data", "hs_sales_email_last_replied", "custom_region_of_interest")
        start = len(self.property_defs(object_type))
        names = [f"{stems[n % 3]}_{n:04d}" for n in range(start, total)]
        for name in names:
            self.add_property(object_type, name, "string", f"v-{name[-4:]}")
        return names

    def associate(self, from_type: str, to_type: str, from_id: int, *to_ids: int) -> None:
        self.links.setdefault((from_type, to_type), {}).setdefault(from_id, []).extend(to_ids)

    def dissociate(self, from_type: str, to_type: str, from_id: int, to_id: int) -> None:
        self.links[(from_type, to_type)][from_id].remove(to_id)

    def add_property(self, object_type: str, name: str, kind: str = "string", value: str = "") -> None:
        """A custom property, set to ``value`` on every existing record."""
        self.custom_properties.setdefault(object_type, []).append((name, kind, "text"))
        for record in self.objects.get(object_type, {}).values():
            record.properties[name] = value

    def _stamp(self, object_type: str, record: Record, at: int) -> None:
        record.modified_ms = at
        record.properties[LAST_MODIFIED.get(object_type, "hs_lastmodifieddate")] = iso(at)
        record.properties[CREATED.get(object_type, "createdate")] = iso(record.created_ms)

    def property_defs(self, object_type: str) -> list[tuple[str, str, str]]:
        return [*PROPERTIES.get(object_type, []), *self.custom_properties.get(object_type, [])]

    # serving ----------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        line = f"{request.method} {request.path}?{urlencode(request.query, doseq=True)} HTTP/1.1"
        if len(line) > self.max_request_line:  # HubSpot's edge answers before the API sees it
            html = "<html>\r\n<head><title>414 Request-URI Too Large</title></head>\r\n<body>\r\n"
            html += "<center><h1>414 Request-URI Too Large</h1></center>\r\n</body>\r\n</html>\r\n"
            return Response(414, html.encode(), {"Content-Type": "text/html"})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self._error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
            )
        throttled = self._throttle(request)
        if throttled:
            return throttled
        parts = request.path.strip("/").split("/")
        reference = self.serve_reference(parts, request)
        if reference is not None:
            return Response(reference.status, reference.body, {**reference.headers, **self._limit_headers()})
        if parts[:3] == ["crm", "v3", "properties"] and len(parts) == 4:
            return self._guard(parts[3], lambda: self._properties(parts[3]))
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) == 4 and request.method == "GET":
            return self._guard(parts[3], lambda: self._list(parts[3], request))
        if (
            parts[:3] == ["crm", "v3", "objects"]
            and parts[4:] == ["batch", "read"]
            and request.method == "POST"
        ):
            return self._guard(parts[3], lambda: self._batch_read(parts[3], request))
        if parts[:3] == ["crm", "v3", "objects"] and parts[4:] == ["search"] and request.method == "POST":
            return self._guard(parts[3], lambda: self._search(parts[3], request))
        if parts[:3] == ["crm", "v4", "associations"] and parts[5:] == ["batch", "read"]:
            return self._guard(parts[3], lambda: self._associations(parts[3], parts[4], request))
        return self._error(404, "OBJECT_NOT_FOUND", f"no route for {request.method} {request.path}")

    def _guard(self, object_type: str, answer: Any) -> Response:
        if object_type in self.denied_scopes:
            body = {
                "status": "error",
                "message": "This app hasn't been granted all required scopes to make this call.",
                "correlationId": "7a1e9f0c-0000-4000-8000-000000000000",
                "errors": [
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [f"crm.objects.{object_type}.read"]},
                    }
                ],
                "links": {"scopes": "https://developers.hubspot.com/scopes"},
                "category": "MISSING_SCOPES",
            }
            return Response.json(body, 403)
        if object_type not in PROPERTIES and object_type not in self.objects | self.custom_properties:
            return self._error(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
        response: Response = answer()
        return response

    def _properties(self, object_type: str) -> Response:
        results = [
            {"name": name, "label": name.title(), "type": kind, "fieldType": field_type, "hidden": False}
            for name, kind, field_type in self.property_defs(object_type)
        ]
        return Response.json({"results": results}, headers=self._limit_headers())

    def _list(self, object_type: str, request: Request) -> Response:
        limit = int(request.param("limit", "10") or 10)
        if not 1 <= limit <= 100:
            return self._error(400, "VALIDATION_ERROR", "limit must be between 1 and 100")
        archived = request.param("archived", "false") == "true"
        names = [n for n in (request.param("properties") or "").split(",") if n]
        records = sorted(
            (
                r
                for r in self.objects.get(object_type, {}).values()
                if (r.archived_ms is not None) == archived
            ),
            key=lambda r: r.id,
        )
        after = int(request.param("after") or 0)
        page = [r for r in records if r.id > after][:limit]
        known = self._known(object_type)
        body: dict[str, Any] = {"results": [r.as_json(names, object_type, known) for r in page]}
        if page and page[-1].id != records[-1].id:
            link = f"https://api.hubapi.com/crm/v3/objects/{object_type}?after={page[-1].id}"
            body["paging"] = {"next": {"after": str(page[-1].id), "link": link}}
        return Response.json(body, headers=self._limit_headers())

    def _search(self, object_type: str, request: Request) -> Response:
        query = request.json() or {}
        limit = int(query.get("limit", 10))
        offset = int(query.get("after") or 0)
        if not 1 <= limit <= 200:
            return self._error(400, "VALIDATION_ERROR", "limit must be between 1 and 200")
        if offset + limit > self.search_cap:
            return self._error(
                400,
                "VALIDATION_ERROR",
                f"Paging through more than {self.search_cap} results is not supported",
            )
        kinds = {name: kind for name, kind, _ in self.property_defs(object_type)}
        live = [r for r in self.objects.get(object_type, {}).values() if r.archived_ms is None]
        groups = query.get("filterGroups") or []
        matched = [r for r in live if not groups or any(matches(r, g, kinds) for g in groups)]
        sorts = query.get("sorts") or [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        if len(sorts) > 1:
            return self._error(400, "VALIDATION_ERROR", "only one sort is supported")
        key, descending = sorts[0]["propertyName"], sorts[0].get("direction") == "DESCENDING"
        matched.sort(key=lambda r: (value(r, key, kinds.get(key)), r.id), reverse=descending)
        names = list(query.get("properties") or [])
        page = matched[offset : offset + limit]
        body: dict[str, Any] = {
            "total": len(matched),
            "results": [r.as_json(names, object_type, self._known(object_type)) for r in page],
        }
        nxt = offset + limit
        if nxt < len(matched) and nxt < self.search_cap:
            body["paging"] = {"next": {"after": str(nxt)}}
        return Response.json(body, headers=self._limit_headers())

    def _known(self, object_type: str) -> set[str]:
        return {name for name, _, _ in self.property_defs(object_type)}

    # rate limits ------------------------------------------------------------------------------------
    def _throttle(self, request: Request) -> Response | None:
        now = time.monotonic()
        with self._limit_lock:
            for window, span in ((self._sent, 10.0), (self._searches, 1.0)):
                # 50 ms of slack: requests are stamped on arrival, the client's limiter stamps them
                # when sent, and a loaded machine delivers them unevenly
                while window and now - window[0] >= span - 0.05:
                    window.popleft()
            is_search = request.path.endswith("/search")
            over = (self.burst_limit is not None and len(self._sent) >= self.burst_limit) or (
                is_search and self.search_limit is not None and len(self._searches) >= self.search_limit
            )
            if over:
                self.throttled += 1
                policy = "SECONDLY" if is_search else "TEN_SECONDLY_ROLLING"
                body = {
                    "status": "error",
                    "message": f"You have reached your {policy.lower()} limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": "00000000-0000-4000-8000-000000000429",
                    "policyName": policy,
                    "groupName": "publicapi:private-app-api-calls-ten-secondly:0000000",
                }
                headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
                return Response.json(body, 429, headers={**headers, **self._limit_headers()})
            self._sent.append(now)
            if is_search:
                self._searches.append(now)
        return None

    def _limit_headers(self) -> dict[str, str]:
        limit = self.burst_limit or 190
        return {
            "X-HubSpot-RateLimit-Daily": "1000000",
            "X-HubSpot-RateLimit-Daily-Remaining": "999000",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(max(limit - len(self._sent), 0)),
        }

    @staticmethod
    def _error(status: int, category: str, message: str) -> Response:
        return Response.json(
            {
                "status": "error",
                "message": message,
                "correlationId": "00000000-0000-4000-8000-000000000000",
                "category": category,
            },
            status,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="HubSpot CRM look-alike on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--contact-properties", type=int, default=0, help="pad contacts to this many")
    args = parser.parse_args()
    fake = FakeHubSpot().start(args.port)
    fake.add("contacts", args.contacts)
    fake.add_portal_properties("contacts", args.contact_properties)
    print(f"HubSpot look-alike on {fake.base_url} (token {fake.token}); Ctrl-C to stop")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
