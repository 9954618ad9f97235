"""The hubspot source's reference lists, property history and configuration, against the look-alike."""

from __future__ import annotations

from typing import Any

import pytest
from dlt.extract.exceptions import ResourceExtractionError

from sources.hubspot import HubSpotClient, HubSpotError, hubspot_source
from sources.hubspot.history import history_rows
from sources.hubspot.limits import object_of
from sources.hubspot.source import DEFAULT_ASSOCIATIONS, ENGAGEMENTS
from tests.fakes.hubspot import FakeHubSpot


def rows(resource: Any) -> list[dict[str, Any]]:
    return list(resource)


def test_owners_are_listed_active_then_archived_across_pages(hubspot: FakeHubSpot) -> None:
    hubspot.add_owners(130)
    hubspot.add_owners(2, archived=True)
    owners = rows(hubspot_source(objects=["owners"]).resources["owners"])
    assert len(owners) == 132 and len({o["id"] for o in owners}) == 132
    assert [o["archived"] for o in owners[-3:]] == [False, True, True]
    listings = hubspot.requests_to("/crm/v3/owners")
    assert [(r.param("archived"), r.param("after")) for r in listings] == [
        ("false", None),
        ("false", "100"),
        ("true", None),
    ]


def test_pipeline_stages_carry_their_metadata_as_columns(hubspot: FakeHubSpot) -> None:
    hubspot.add_pipeline("deals", "default", "Sales", ["appointmentscheduled", "closedwon"])
    hubspot.add_pipeline("tickets", "0", "Support", ["new", "closed"])
    listed = rows(hubspot_source(objects=["pipelines"]).resources["pipelines"])
    deals, tickets = listed
    assert (deals["object_type"], deals["id"], tickets["object_type"], tickets["id"]) == (
        "deals",
        "default",
        "tickets",
        "0",
    )
    won = deals["stages"][1]
    assert won["id"] == "closedwon" and won["metadata__isClosed"] == "true" and "metadata" not in won
    assert tickets["stages"][1]["metadata__ticketState"] == "CLOSED"


def test_engagements_tickets_and_quotes_associate_with_contacts_companies_and_deals() -> None:
    for name in ("tickets", "quotes", *ENGAGEMENTS):
        assert DEFAULT_ASSOCIATIONS[name] == ["contacts", "companies", "deals"], name
    assert DEFAULT_ASSOCIATIONS["line_items"] == ["deals"]


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/crm/v3/objects/deals/search", "deals"),
        ("/crm/v3/objects/2-9000000/batch/read", "2-9000000"),
        ("/crm/v3/properties/calls", "calls"),
        ("/crm/v4/associations/notes/contacts/batch/read", "notes"),
        ("/crm/v3/owners", "owners"),
        ("/crm/v3/pipelines/tickets", "pipelines"),
        ("/crm/v3/schemas", "schemas"),
    ],
)
def test_requests_are_counted_by_what_they_read(path: str, what: str) -> None:
    assert object_of(path) == what


def test_history_entries_become_rows_newest_first_as_sent() -> None:
    record = {
        "id": "42",
        "propertiesWithHistory": {
            "dealstage": [
                {"value": "closedwon", "timestamp": "2026-11-02T09:30:00.000Z", "sourceType": "CRM_UI",
                 "sourceId": "userId:1", "updatedByUserId": 41629850},
                {"value": "appointmentscheduled", "timestamp": "2026-10-01T08:00:00Z",
                 "sourceType": "IMPORT"},
            ]
        },
    }  # fmt: skip
    [new, old] = history_rows(record, "test")
    assert (new["object_id"], new["property"], new["value"], new["updated_by_user_id"]) == (
        "42",
        "dealstage",
        "closedwon",
        41629850,
    )
    assert old["timestamp"].isoformat() == "2026-10-01T08:00:00+00:00" and old["updated_by_user_id"] is None


@pytest.mark.parametrize(
    "history", [["not", "an", "object"], {"dealstage": "not a list"}, {"dealstage": [{"timestamp": "soon"}]}]
)
def test_a_history_that_is_not_the_documented_shape_fails_loudly(history: Any) -> None:
    with pytest.raises(HubSpotError):
        history_rows({"id": "42", "propertiesWithHistory": history}, "test")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("property_history", "{deals: dealstage}", "is not JSON"),
        ("property_history", '{"deals": "dealstage"}', "must map objects to lists"),
        ("property_history", '{"deals": []}', "must map objects to lists"),
        ("custom_objects", 7, r'must be "\*" or a list'),
    ],
)
def test_bad_opt_in_settings_are_clear_errors(
    hubspot: FakeHubSpot, setting: str, value: Any, message: str
) -> None:
    with pytest.raises(Exception, match=message):
        hubspot_source(objects=["deals"], **{setting: value})


def test_429_on_the_pipelines_list_is_retried(hubspot: FakeHubSpot) -> None:
    hubspot.add_pipeline("deals", "default", "Sales", ["closedwon"])
    hubspot.fail(429, times=1, path="/crm/v3/pipelines/deals", headers={"Retry-After": "1"})
    assert len(rows(hubspot_source(objects=["pipelines"]).resources["pipelines"])) == 1
    assert len(hubspot.requests_to("/crm/v3/pipelines/deals")) == 2


def test_a_pipelines_answer_that_is_not_the_documented_shape_fails(hubspot: FakeHubSpot) -> None:
    hubspot.fail(200, times=1, path="/crm/v3/pipelines/deals", body='{"results": [{"label": "no id"}]}')
    with pytest.raises(ResourceExtractionError) as exc:
        rows(hubspot_source(objects=["pipelines"]).resources["pipelines"])
    assert "a pipeline without an id" in str(exc.value.__cause__)


def test_the_client_counts_requests_per_object_into_a_callers_dict(hubspot: FakeHubSpot) -> None:
    client = HubSpotClient(hubspot.token, hubspot.base_url)
    counts: dict[str, int] = {}
    client.count_into(counts)
    client.properties("calls")
    client.results("crm/v3/pipelines/deals", "pipelines")
    assert counts == {"calls": 1, "pipelines": 1} and client.requests_by_object == counts
