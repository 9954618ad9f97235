"""A look-alike of HubSpot's CRM API (https://developers.hubspot.com/docs/api/crm), served on 127.0.0.1.

Follows the public documentation for what the hubspot source uses:

- ``GET /crm/v3/properties/{object}``: the object's properties (``name``, ``type``, ``fieldType``);
- ``GET /crm/v3/objects/{object}?limit=&after=&properties=&archived=``: every record, by id, pages of
  at most 100 with a ``paging.next.after`` cursor; ``archived=true`` lists the recycle bin instead;
- ``POST /crm/v3/objects/{object}/search``: ``filterGroups`` (OR of ANDed filters: EQ, NEQ, LT, LTE,
  GT, GTE, BETWEEN, IN, HAS_PROPERTY, NOT_HAS_PROPERTY), one sort, ``properties``, ``limit`` (<= 200)
  and an offset ``after``; archived records are never returned; at most ``search_cap`` results per
  query (10,000, configurable so tests stay small): paging stops there and ``after`` past it is a 400;
- ``POST /crm/v4/associations/{from}/{to}/batch/read``: at most 1,000 inputs, per-record paging;
- a private-app token as ``Authorization: Bearer``: 401 ``INVALID_AUTHENTICATION`` otherwise, and 403
  ``MISSING_SCOPES`` with ``errors[].context.requiredGranularScopes`` for objects in ``denied_scopes``;
- ``X-HubSpot-RateLimit-*`` headers, and optionally enforced limits (``burst_limit`` per 10 s,
  ``search_limit`` per second) answered with 429 and HubSpot's error body.

Run it by hand::

    uv run python -m tests.fakes.hubspot --port 8766 --contacts 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.base import FakeApi, Request, Response

TOKEN = "pat-eu1-fake-token-0000"
EPOCH = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).replace(microsecond=0)
"""Where seeded histories start: a month ago, so every change is older than the source's search lag."""
LAST_MODIFIED = {"contacts": "lastmodifieddate"}
CREATED = {"contacts": "createdate"}
PRIMARY = {"category": "USER_DEFINED", "typeId": 7, "label": "Primary"}
"""A labelled association type the look-alike adds to each record's first association."""

PROPERTIES: dict[str, list[tuple[str, str, str]]] = {
    # (name, type, fieldType)
    "contacts": [
        ("email", "string", "text"),
        ("firstname", "string", "text"),
        ("lastname", "string", "text"),
        ("lifecyclestage", "enumeration", "radio"),
        ("num_notes", "number", "number"),
        ("hs_email_optout", "bool", "booleancheckbox"),
        ("date_of_birth", "date", "date"),
        ("createdate", "datetime", "date"),
        ("lastmodifieddate", "datetime", "date"),
        ("hs_object_id", "number", "number"),
    ],
    "companies": [
        ("name", "string", "text"),
        ("domain", "string", "text"),
        ("annualrevenue", "number", "number"),
        ("createdate", "datetime", "date"),
        ("hs_lastmodifieddate", "datetime", "date"),
        ("hs_object_id", "number", "number"),
    ],
    "deals": [
        ("dealname", "string", "text"),
        ("amount", "number", "number"),
        ("dealstage", "enumeration", "radio"),
        ("closedate", "datetime", "date"),
        ("createdate", "datetime", "date"),
        ("hs_lastmodifieddate", "datetime", "date"),
        ("hs_object_id", "number", "number"),
    ],
    "tickets": [
        ("subject", "string", "text"),
        ("hs_pipeline_stage", "enumeration", "select"),
        ("createdate", "datetime", "date"),
        ("hs_lastmodifieddate", "datetime", "date"),
        ("hs_object_id", "number", "number"),
    ],
    "products": [
        ("name", "string", "text"),
        ("price", "number", "number"),
        ("createdate", "datetime", "date"),
        ("hs_lastmodifieddate", "datetime", "date"),
        ("hs_object_id", "number", "number"),
    ],
}


def iso(ms: int) -> str:
    """HubSpot's timestamp format: ISO 8601, milliseconds, Z."""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class Record:
    id: int
    properties: dict[str, str | None]
    created_ms: int
    modified_ms: int
    archived_ms: int | None = None

    def as_json(self, names: list[str], object_type: str) -> dict[str, Any]:
        props = {n: self.properties.get(n) for n in names}
        props["hs_object_id"] = str(self.id)
        body: dict[str, Any] = {
            "id": str(self.id),
            "properties": props,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.modified_ms),
            "archived": self.archived_ms is not None,
        }
        if self.archived_ms is not None:
            body["archivedAt"] = iso(self.archived_ms)
        return body


@dataclass
class FakeHubSpot(FakeApi):
    """The look-alike. Seed it with :meth:`add`, change it with :meth:`modify`, :meth:`archive`."""

    token: str = TOKEN
    search_cap: int = 10_000
    association_page_size: int = 500
    burst_limit: int | None = None
    search_limit: int | None = None
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

    # seeding ----------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every record, link and setting (the server keeps running)."""
        self.reset()
        self.objects.clear()
        self.links.clear()
        self.custom_properties.clear()
        self.denied_scopes.clear()
        self.search_cap, self.association_page_size = 10_000, 500
        self.burst_limit = self.search_limit = None
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
            record.properties.update(self._sample(object_type, self._next_id))
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
            record.properties.update(properties)
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

    @staticmethod
    def _sample(object_type: str, n: int) -> dict[str, str | None]:
        samples: dict[str, dict[str, str | None]] = {
            "contacts": {
                "email": f"person{n}@example.com",
                "firstname": f"First{n}",
                "lastname": f"Last{n}",
                "lifecyclestage": "lead",
                "num_notes": str(n % 7),
                "hs_email_optout": "true" if n % 2 else "false",
                "date_of_birth": "1990-05-17",
            },
            "companies": {
                "name": f"Company {n}",
                "domain": f"c{n}.example.com",
                "annualrevenue": "1250000.50",
            },
            "deals": {
                "dealname": f"Deal {n}",
                "amount": f"{n}.25",
                "dealstage": "appointmentscheduled",
                "closedate": "2026-12-31T00:00:00Z",
            },
            "tickets": {"subject": f"Ticket {n}", "hs_pipeline_stage": "1"},
            "products": {"name": f"Product {n}", "price": "9.99"},
        }
        return dict(samples.get(object_type, {}))

    def property_defs(self, object_type: str) -> list[tuple[str, str, str]]:
        return [*PROPERTIES.get(object_type, []), *self.custom_properties.get(object_type, [])]

    # serving ----------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
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
        if parts[:3] == ["crm", "v3", "properties"] and len(parts) == 4:
            return self._guard(parts[3], lambda: self._properties(parts[3]))
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) == 4 and request.method == "GET":
            return self._guard(parts[3], lambda: self._list(parts[3], request))
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
        if object_type not in PROPERTIES and object_type not in self.objects:
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
        body: dict[str, Any] = {"results": [r.as_json(names, object_type) for r in page]}
        if page and page[-1].id != records[-1].id:
            body["paging"] = {"next": {"after": str(page[-1].id), "link": "?after=" + str(page[-1].id)}}
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
        matched = [r for r in live if not groups or any(self._matches(r, g, kinds) for g in groups)]
        sorts = query.get("sorts") or [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        if len(sorts) > 1:
            return self._error(400, "VALIDATION_ERROR", "only one sort is supported")
        key, descending = sorts[0]["propertyName"], sorts[0].get("direction") == "DESCENDING"
        matched.sort(key=lambda r: (self._value(r, key, kinds.get(key)), r.id), reverse=descending)
        names = list(query.get("properties") or [])
        page = matched[offset : offset + limit]
        body: dict[str, Any] = {
            "total": len(matched),
            "results": [r.as_json(names, object_type) for r in page],
        }
        nxt = offset + limit
        if nxt < len(matched) and nxt < self.search_cap:
            body["paging"] = {"next": {"after": str(nxt)}}
        return Response.json(body, headers=self._limit_headers())

    def _associations(self, from_type: str, to_type: str, request: Request) -> Response:
        inputs = (request.json() or {}).get("inputs") or []
        if len(inputs) > 1000:
            return self._error(400, "VALIDATION_ERROR", "at most 1000 inputs per batch read")
        links = self.links.get((from_type, to_type), {})
        results = []
        for item in inputs:
            targets = links.get(int(item["id"]), [])
            start = int(item.get("after") or 0)
            chunk = targets[start : start + self.association_page_size]
            if not chunk:
                continue
            result: dict[str, Any] = {
                "from": {"id": str(item["id"])},
                "to": [
                    {
                        "toObjectId": int(t),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None},
                            *(
                                [{"category": "USER_DEFINED", "typeId": 7, "label": "Primary"}]
                                if t == targets[0]
                                else []
                            ),
                        ],
                    }
                    for t in chunk
                ],
            }
            if start + len(chunk) < len(targets):
                result["paging"] = {"next": {"after": str(start + len(chunk))}}
            results.append(result)
        body = {"status": "COMPLETE", "results": results, "startedAt": iso(0), "completedAt": iso(0)}
        return Response.json(body, 200, headers=self._limit_headers())

    # filters ----------------------------------------------------------------------------------------
    def _value(self, record: Record, name: str, kind: str | None) -> Any:
        if name in ("lastmodifieddate", "hs_lastmodifieddate") and record.id:
            return record.modified_ms  # the same value, without parsing it on every comparison
        raw = str(record.id) if name == "hs_object_id" else record.properties.get(name)
        if raw is None or raw == "":
            return None
        if kind == "datetime":
            return int(dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1000)
        if kind == "number":
            return float(raw)
        return raw

    def _matches(self, record: Record, group: dict[str, Any], kinds: dict[str, str]) -> bool:
        for flt in group.get("filters") or []:
            name, op = flt["propertyName"], flt["operator"]
            kind = kinds.get(name, "number" if name == "hs_object_id" else "string")
            have = self._value(record, name, kind)

            def want(raw: Any, kind: str = kind) -> Any:
                if kind == "datetime":
                    text = str(raw)
                    return (
                        int(text) if text.isdigit() else self._value(Record(0, {"x": text}, 0, 0), "x", kind)
                    )
                return float(raw) if kind == "number" else str(raw)

            if op == "HAS_PROPERTY":
                ok = have is not None
            elif op == "NOT_HAS_PROPERTY":
                ok = have is None
            elif have is None:
                ok = False
            elif op == "EQ":
                ok = have == want(flt["value"])
            elif op == "NEQ":
                ok = have != want(flt["value"])
            elif op == "LT":
                ok = have < want(flt["value"])
            elif op == "LTE":
                ok = have <= want(flt["value"])
            elif op == "GT":
                ok = have > want(flt["value"])
            elif op == "GTE":
                ok = have >= want(flt["value"])
            elif op == "BETWEEN":
                ok = want(flt["value"]) <= have <= want(flt["highValue"])
            elif op == "IN":
                ok = have in {want(v) for v in flt.get("values") or []}
            else:
                raise ValueError(f"operator {op} is not supported by the look-alike")
            if not ok:
                return False
        return True

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
                    "message": "You have reached your secondly limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": "00000000-0000-4000-8000-000000000429",
                    "policyName": policy,
                }
                return Response.json(body, 429, headers={"Retry-After": "1"})
            self._sent.append(now)
            if is_search:
                self._searches.append(now)
        return None

    def _limit_headers(self) -> dict[str, str]:
        limit = self.burst_limit or 190
        return {
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
    args = parser.parse_args()
    fake = FakeHubSpot().start(args.port)
    fake.add("contacts", args.contacts)
    print(f"HubSpot look-alike on {fake.base_url} (token {fake.token}); Ctrl-C to stop")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
