"""The HubSpot client and source against the look-alike: paging, windowing, limits, errors, secrets."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from sources.hubspot import HubSpotAuthError, HubSpotClient, HubSpotError, SlidingWindowLimiter
from sources.hubspot.client import to_ms
from sources.hubspot.source import select_properties, to_row, typed
from tests.fakes.hubspot import EPOCH, FakeHubSpot, ms

FAR_FUTURE = ms(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))


def client_for(fake: FakeHubSpot, **options: int) -> HubSpotClient:
    limits = {"requests_per_10_seconds": 100_000, "search_requests_per_second": 10_000}
    return HubSpotClient(fake.token, fake.base_url, **{**limits, **options})


def searched_ids(client: HubSpotClient, since: int = 0, until: int = FAR_FUTURE) -> list[int]:
    pages = client.search_modified("contacts", "lastmodifieddate", ["email"], since, until)
    return [int(r["id"]) for page in pages for r in page]


# --- rate limiting ----------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_limiter_waits_only_until_the_oldest_request_leaves_the_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(4, 1.0, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        assert limiter.acquire() == 0.0
        clock.now += 0.1  # four requests at 0.0, 0.1, 0.2, 0.3
    assert limiter.acquire() == pytest.approx(0.6)  # the request at 0.0 leaves the window at 1.0
    assert clock.now == pytest.approx(1.0)
    clock.now = 5.0
    assert limiter.acquire() == 0.0  # an idle client never waits
    assert clock.sleeps == [pytest.approx(0.6)]


def test_search_stays_under_hubspots_search_limit(hubspot: FakeHubSpot) -> None:
    hubspot.search_limit = 4  # the look-alike answers 429 beyond 4 searches a second
    hubspot.add("contacts", 60)
    client = client_for(hubspot, search_requests_per_second=4, search_result_cap=10)
    ids = searched_ids(client)
    assert len(ids) == 60 and hubspot.throttled == 0
    assert client.requests_made["search"] == 7  # 6 windows of 10, and one more to see the last is empty
    searches = hubspot.requests_to("/crm/v3/objects/contacts/search")
    assert searches[4].received_at - searches[0].received_at >= 0.9, "the fifth search waited its turn"


def test_429_with_retry_after_is_honoured(hubspot: FakeHubSpot) -> None:
    hubspot.add("contacts", 150)
    hubspot.fail(429, times=1, path="/crm/v3/objects/contacts", headers={"Retry-After": "1"})
    client = client_for(hubspot)
    pages = list(client.list_objects("contacts", ["email"]))
    assert sum(len(p) for p in pages) == 150
    gets = hubspot.requests_to("/crm/v3/objects/contacts")
    assert len(gets) == 3  # the throttled request was sent again, then the second page


def test_5xx_burst_is_retried_and_loses_nothing(hubspot: FakeHubSpot) -> None:
    hubspot.add("contacts", 250)
    hubspot.fail(502, times=2, path="/crm/v3/objects/contacts/search")
    ids = searched_ids(client_for(hubspot))
    assert ids == sorted(hubspot.objects["contacts"])
    assert len(hubspot.requests_to("/crm/v3/objects/contacts/search")) == 3 + 2


# --- paging and windowing ---------------------------------------------------------------------------
def test_list_pages_by_100_with_the_after_cursor(hubspot: FakeHubSpot) -> None:
    hubspot.add("contacts", 250)
    client = client_for(hubspot)
    pages = list(client.list_objects("contacts", ["email", "firstname"]))
    assert [len(p) for p in pages] == [100, 100, 50]
    requests = hubspot.requests_to("/crm/v3/objects/contacts")
    assert [r.param("after") for r in requests] == [None, "1100", "1200"]
    assert {r.param("limit") for r in requests} == {"100"}
    assert pages[0][0]["properties"]["email"] == "person1001@example.com"


def test_search_windows_past_the_cap_without_loss_or_duplicates(hubspot: FakeHubSpot) -> None:
    hubspot.search_cap = 50
    hubspot.add("contacts", 180, step_ms=1_000)
    # ties across window boundaries: 30 records share each of these instants
    hubspot.add("contacts", 30, start=EPOCH + dt.timedelta(hours=1), step_ms=0)
    hubspot.add("contacts", 30, start=EPOCH + dt.timedelta(hours=2), step_ms=0)
    client = client_for(hubspot, search_result_cap=50)
    ids = searched_ids(client)
    assert sorted(ids) == sorted(hubspot.objects["contacts"]) and len(ids) == len(set(ids)) == 240
    searches = hubspot.requests_to("/crm/v3/objects/contacts/search")
    assert all(int(r.json()["after"]) + r.json()["limit"] <= 50 for r in searches)  # never past the cap
    assert len(searches) <= math.ceil(240 / 50) * 2 + 2


def test_more_changes_at_one_instant_than_the_cap_are_drained_by_id(hubspot: FakeHubSpot) -> None:
    hubspot.search_cap = 50
    hubspot.add("contacts", 10, step_ms=1_000)
    hubspot.add("contacts", 130, start=EPOCH + dt.timedelta(hours=1), step_ms=0)  # a bulk import
    hubspot.add("contacts", 10, start=EPOCH + dt.timedelta(hours=2), step_ms=1_000)
    ids = searched_ids(client_for(hubspot, search_result_cap=50))
    assert sorted(ids) == sorted(hubspot.objects["contacts"]) and len(ids) == len(set(ids)) == 150


def test_search_window_is_half_open(hubspot: FakeHubSpot) -> None:
    ids = hubspot.add("contacts", 10, step_ms=1_000)
    client = client_for(hubspot)
    start = ms(EPOCH)
    assert searched_ids(client, start + 2_000, start + 5_000) == ids[2:5]
    assert searched_ids(client, start + 5_000, start + 5_000) == []


def test_associations_are_read_in_batches_of_1000_and_paged_per_record(hubspot: FakeHubSpot) -> None:
    hubspot.association_page_size = 2
    contacts = hubspot.add("contacts", 1_200)
    companies = hubspot.add("companies", 5)
    hubspot.associate("contacts", "companies", contacts[0], *companies)
    hubspot.associate("contacts", "companies", contacts[-1], companies[0])
    client = client_for(hubspot)
    linked = client.associations("contacts", "companies", [str(c) for c in contacts])
    assert [row["to_id"] for row in linked[str(contacts[0])] if row["type_id"] == 1] == [
        str(c) for c in companies
    ]
    assert linked[str(contacts[0])][1] == {
        "from_id": str(contacts[0]),
        "to_id": str(companies[0]),
        "type_id": 7,
        "category": "USER_DEFINED",
        "label": "Primary",
    }
    assert str(contacts[-1]) in linked and str(contacts[1]) not in linked
    batches = [len(r.json()["inputs"]) for r in hubspot.requests if r.path.endswith("/batch/read")]
    assert batches == [1_000, 201, 1]  # follow-up pages ride along with the next batch of ids


# --- errors and secrets -----------------------------------------------------------------------------
def test_missing_scope_names_the_scope(hubspot: FakeHubSpot) -> None:
    hubspot.denied_scopes.add("deals")
    with pytest.raises(HubSpotAuthError) as exc:
        client_for(hubspot).properties("deals")
    message = str(exc.value)
    assert "403 MISSING_SCOPES" in message and "crm.objects.deals.read" in message
    assert "Private apps" in message


def test_rejected_token_says_where_to_set_it_and_never_shows_it(hubspot: FakeHubSpot) -> None:
    canary = "pat-na1-CANARY-0123456789abcdef"
    client = HubSpotClient(canary, hubspot.base_url)
    with pytest.raises(HubSpotAuthError) as exc:
        list(client.list_objects("contacts", ["email"]))
    assert "401 INVALID_AUTHENTICATION" in str(exc.value) and "sources.hubspot.api_key" in str(exc.value)
    assert canary not in str(exc.value) and canary not in repr(exc.value)
    assert hubspot.requests[-1].headers["authorization"] == f"Bearer {canary}"  # sent, as a header


def test_malformed_page_fails_with_a_clear_error(hubspot: FakeHubSpot) -> None:
    hubspot.add("contacts", 250)
    hubspot.fail(200, times=1, path="/crm/v3/objects/contacts", body="<html>Service Unavailable</html>")
    with pytest.raises(HubSpotError, match="not valid JSON"):
        list(client_for(hubspot).list_objects("contacts", ["email"]))
    hubspot.fail(200, times=1, path="/crm/v3/objects/contacts", body='{"status": "ok"}')
    with pytest.raises(HubSpotError, match="no 'results' list"):
        list(client_for(hubspot).list_objects("contacts", ["email"]))


def test_missing_token_is_a_clear_error() -> None:
    with pytest.raises(HubSpotAuthError, match="SOURCES__HUBSPOT__API_KEY"):
        HubSpotClient("", "http://127.0.0.1:9")


# --- rows ---------------------------------------------------------------------------------------------
def test_property_selection_keeps_the_cursor_property() -> None:
    kinds = {"email": "string", "hs_analytics_source": "string", "lastmodifieddate": "datetime"}
    assert select_properties(kinds, [], [], "lastmodifieddate") == sorted(kinds)
    assert select_properties(kinds, [], ["hs_analytics_*"], "lastmodifieddate") == [
        "email",
        "lastmodifieddate",
    ]
    assert select_properties(kinds, ["email"], [], "lastmodifieddate") == ["email", "lastmodifieddate"]


def test_values_are_typed_from_the_property_type_and_never_dropped() -> None:
    assert typed("12.50", "number") == Decimal("12.5") and isinstance(typed("12.50", "number"), Decimal)
    assert typed("0.1", "number") == Decimal("0.1")  # exact: a float 0.1 is not equal to it
    assert typed("true", "bool") is True and typed("", "bool") is None
    assert typed("not a number", "number") == "not a number"
    assert typed("2026-05-17", "date") == dt.date(2026, 5, 17)
    assert typed("", "string") == ""
    row = to_row(
        {"id": "7", "properties": {"id": "x", "num": "3"}, "createdAt": "2026-01-01T00:00:00.000Z"},
        {"num": "number"},
    )
    assert row["id"] == "7" and row["property_id"] == "x" and row["archived"] is False
    assert to_ms("2026-01-01T00:00:00.250Z") == ms(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) + 250
