"""The HubSpot look-alike's records: property definitions per object, sample values, the record as HubSpot
sends it (with each property's history) and the search filters. Evidence: ``tests/fakes/hubspot.md``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

EPOCH = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).replace(microsecond=0)
"""Where seeded histories start: a month ago, so every change is older than the source's search lag."""
LAST_MODIFIED = {"contacts": "lastmodifieddate"}
CREATED = {"contacts": "createdate"}
MERGED_IDS = "hs_merged_object_ids"
"""Where HubSpot lists the ids merged into a record (semicolon-separated)."""

COMMON: list[tuple[str, str, str]] = [
    ("createdate", "datetime", "date"),
    ("hs_lastmodifieddate", "datetime", "date"),
    ("hs_object_id", "number", "number"),
]
ENGAGEMENT_BODIES = {
    "calls": "hs_call_body",
    "emails": "hs_email_subject",
    "meetings": "hs_meeting_title",
    "notes": "hs_note_body",
    "tasks": "hs_task_subject",
}
"""The five engagement objects (CRM objects with ``hs_timestamp``) and one text property each."""

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
        (MERGED_IDS, "enumeration", "checkbox"),
    ],
    "companies": [
        ("name", "string", "text"),
        ("domain", "string", "text"),
        ("annualrevenue", "number", "number"),
        ("createdate", "datetime", "date"),
        ("hs_lastmodifieddate", "datetime", "date"),
        ("hs_object_id", "number", "number"),
        (MERGED_IDS, "enumeration", "checkbox"),
    ],
    "deals": [
        ("dealname", "string", "text"),
        ("amount", "number", "number"),
        ("dealstage", "enumeration", "radio"),
        ("pipeline", "enumeration", "select"),
        ("hubspot_owner_id", "enumeration", "select"),
        ("closedate", "datetime", "date"),
        ("createdate", "datetime", "date"),
        ("hs_lastmodifieddate", "datetime", "date"),
        ("hs_object_id", "number", "number"),
        (MERGED_IDS, "enumeration", "checkbox"),
    ],
    "tickets": [
        ("subject", "string", "text"),
        ("hs_pipeline", "enumeration", "select"),
        ("hs_pipeline_stage", "enumeration", "select"),
        ("hubspot_owner_id", "enumeration", "select"),
        ("createdate", "datetime", "date"),
        ("hs_lastmodifieddate", "datetime", "date"),
        ("hs_object_id", "number", "number"),
        (MERGED_IDS, "enumeration", "checkbox"),
    ],
    "products": [
        ("name", "string", "text"),
        ("price", "number", "number"),
        ("createdate", "datetime", "date"),
        ("hs_lastmodifieddate", "datetime", "date"),
        ("hs_object_id", "number", "number"),
        (MERGED_IDS, "enumeration", "checkbox"),
    ],
    "line_items": [
        ("name", "string", "text"),
        ("quantity", "number", "number"),
        ("price", "number", "number"),
        ("hs_product_id", "number", "number"),
        *COMMON,
    ],
    "quotes": [("hs_title", "string", "text"), ("hs_status", "enumeration", "select"), *COMMON],
    **{
        engagement: [
            ("hs_timestamp", "datetime", "date"),
            ("hubspot_owner_id", "enumeration", "select"),
            (body, "string", "textarea"),
            *COMMON,
        ]
        for engagement, body in ENGAGEMENT_BODIES.items()
    },
}
OWNED = ("deals", "tickets", *ENGAGEMENT_BODIES)
"""Objects whose sample records carry a ``hubspot_owner_id`` (one of the ids ``add_owners`` hands out)."""
FIRST_OWNER_ID = 41_629_850


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
    history: dict[str, list[tuple[str | None, int]]] = field(default_factory=dict)
    """Every value each property has had, with the time it was set, oldest first."""

    def change(self, properties: dict[str, str | None], at: int) -> None:
        """Set properties at ``at`` (epoch ms), keeping each one's history as HubSpot does."""
        for name, new in properties.items():
            self.history.setdefault(name, []).append((new, at))
        self.properties.update(properties)

    def history_json(self, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        """``propertiesWithHistory``: per requested property, its values newest first."""
        return {
            name: [
                {
                    "value": "" if old is None else old,
                    "timestamp": iso(at),
                    "sourceType": "CRM_UI",
                    "sourceId": "userId:41629850",
                    "updatedByUserId": 41629850,
                }
                for old, at in reversed(self.history.get(name, []))
            ]
            for name in names
        }

    def as_json(self, names: list[str], object_type: str, known: set[str] | None = None) -> dict[str, Any]:
        """The record as HubSpot sends it: requested properties that exist (unset ones as null;
        names the object does not have are left out, not an error), ``hs_object_id`` always."""
        props = {n: self.properties.get(n) for n in names if known is None or n in known}
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


def sample(object_type: str, n: int) -> dict[str, str | None]:
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
            "pipeline": "default",
            "closedate": "2026-12-31T00:00:00Z",
        },
        "tickets": {"subject": f"Ticket {n}", "hs_pipeline": "0", "hs_pipeline_stage": "1"},
        "products": {"name": f"Product {n}", "price": "9.99"},
        "line_items": {"name": f"Line {n}", "quantity": "2", "price": "9.99", "hs_product_id": "1"},
        "quotes": {"hs_title": f"Quote {n}", "hs_status": "DRAFT"},
        **{
            e: {"hs_timestamp": "2026-11-02T09:30:00.000Z", b: f"{e} {n}"}
            for e, b in ENGAGEMENT_BODIES.items()
        },
    }
    values = dict(samples.get(object_type, {}))
    if object_type in OWNED:
        values["hubspot_owner_id"] = str(FIRST_OWNER_ID + n % 50)
    return values


def value(record: Record, name: str, kind: str | None) -> Any:
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


def matches(record: Record, group: dict[str, Any], kinds: dict[str, str]) -> bool:
    for flt in group.get("filters") or []:
        name, op = flt["propertyName"], flt["operator"]
        kind = kinds.get(name, "number" if name == "hs_object_id" else "string")
        have = value(record, name, kind)

        def want(raw: Any, kind: str = kind) -> Any:
            if kind == "datetime":
                text = str(raw)
                return int(text) if text.isdigit() else value(Record(0, {"x": text}, 0, 0), "x", kind)
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
