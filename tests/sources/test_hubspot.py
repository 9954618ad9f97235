"""The HubSpot client and source against the look-alike: paging, windowing, limits, errors, secrets."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import requests

from sources.hubspot import HubSpotAuthError, HubSpotClient, HubSpotError, SlidingWindowLimiter
from sources.hubspot.client import URL_BUDGET, split_for_url, to_ms
from sources.hubspot.rows import merged_away, to_row, typed
from sources.hubspot.source import select_properties
from tests.fakes.hubspot import EPOCH, MAX_REQUEST_LINE, FakeHubSpot, ms

ATTEMPTS = 3
"""``RUNTIME__REQUEST_MAX_ATTEMPTS`` in tests/conftest.py: every retry is bounded by it."""
RATE_LIMITED = json.dumps(
    {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c93e06a4-7d61-4c3e-b63f-edf486fc6e90",
        "policyName": "SECONDLY",
    }
)
"""HubSpot's 429 body (hubspot-api-python issue 117), here without ``Retry-After`` as HubSpot often sends."""

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
    hubspot.archive("contacts", sorted(hubspot.objects["contacts"]))
    hubspot.fail(429, times=1, path="/crm/v3/objects/contacts", headers={"Retry-After": "1"})
    client = client_for(hubspot)
    started = time.monotonic()
    pages = list(client.list_objects("contacts", ["email"], archived=True))
    assert sum(len(p) for p in pages) == 150
    gets = hubspot.requests_to("/crm/v3/objects/contacts")
    assert len(gets) == 3  # the throttled request was sent again, then the second page
    assert gets[1].received_at - gets[0].received_at >= 0.9, "waited for Retry-After"
    assert time.monotonic() - started >= 0.9


def test_429_without_retry_after_waits_for_hubspots_window(hubspot: FakeHubSpot) -> None:
    """HubSpot's 429s often carry no Retry-After: dlt's own backoff (0.01 s here) would retry at once
    into the same window; the client waits HubSpot's policy interval (1 s for search) instead."""
    hubspot.add("contacts", 30)
    hubspot.fail(429, times=1, path="/crm/v3/objects/contacts/search", body=RATE_LIMITED)
    assert len(searched_ids(client_for(hubspot))) == 30
    searches = hubspot.requests_to("/crm/v3/objects/contacts/search")
    assert len(searches) == 2
    assert searches[1].received_at - searches[0].received_at >= 0.9, "waited for the secondly window"


def test_the_look_alike_throttles_without_retry_after_and_the_client_recovers(hubspot: FakeHubSpot) -> None:
    hubspot.search_limit = 2  # HubSpot's own 429s: RATE_LIMIT body, no Retry-After
    hubspot.add("contacts", 50)
    client = client_for(hubspot, search_result_cap=10)  # 6 searches, at most 2 a second at HubSpot
    assert sorted(searched_ids(client)) == sorted(hubspot.objects["contacts"])
    assert hubspot.throttled >= 1, "the look-alike did throttle"


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [(503, {}, "HTTP 503"), (429, {"Retry-After": "0"}, "HTTP 429"), (429, {}, "HTTP 429")],
    ids=["persistent-5xx", "429-storm", "429-storm-without-retry-after"],
)
def test_retries_are_bounded(hubspot: FakeHubSpot, status: int, headers: dict[str, str], error: str) -> None:
    hubspot.add("contacts", 5)
    hubspot.fail(status, times=100, path="/crm/v3/objects/contacts/search", headers=headers)
    with pytest.raises(HubSpotError, match=error):
        searched_ids(client_for(hubspot))
    assert len(hubspot.requests_to("/crm/v3/objects/contacts/search")) == ATTEMPTS


def test_5xx_burst_is_retried_and_loses_nothing(hubspot: FakeHubSpot) -> None:
    hubspot.add("contacts", 250)
    hubspot.fail(502, times=2, path="/crm/v3/objects/contacts/search")
    ids = searched_ids(client_for(hubspot))
    assert ids == sorted(hubspot.objects["contacts"])
    assert len(hubspot.requests_to("/crm/v3/objects/contacts/search")) == math.ceil(250 / 200) + 2


# --- paging and windowing ---------------------------------------------------------------------------
def test_search_pages_hold_200_records(hubspot: FakeHubSpot) -> None:
    hubspot.add("contacts", 450)
    pages = list(client_for(hubspot).search_all("contacts", ["email"]))
    assert [len(p) for p in pages] == [200, 200, 50]
    searches = hubspot.requests_to("/crm/v3/objects/contacts/search")
    assert [r.json()["limit"] for r in searches] == [200, 200, 200]
    assert [int(r["id"]) for p in pages for r in p] == sorted(hubspot.objects["contacts"])


def test_full_load_by_id_goes_past_the_search_cap(hubspot: FakeHubSpot) -> None:
    hubspot.search_cap = 50
    hubspot.add("contacts", 180)
    hubspot.archive("contacts", sorted(hubspot.objects["contacts"])[:10])  # search never shows these
    ids = [
        int(r["id"]) for p in client_for(hubspot, search_result_cap=50).search_all("contacts", []) for r in p
    ]
    assert ids == sorted(hubspot.objects["contacts"])[10:]
    searches = hubspot.requests_to("/crm/v3/objects/contacts/search")
    assert all(int(r.json()["after"]) + r.json()["limit"] <= 50 for r in searches)
    assert len(searches) == math.ceil(170 / 50)


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


def test_ids_without_associations_answer_207_and_are_not_an_error(hubspot: FakeHubSpot) -> None:
    contacts = hubspot.add("contacts", 3)
    company = hubspot.add("companies", 1)[0]
    hubspot.associate("contacts", "companies", contacts[0], company)
    client = client_for(hubspot)
    linked = client.associations("contacts", "companies", [str(c) for c in contacts])
    assert list(linked) == [str(contacts[0])]
    answer = requests.post(
        f"{hubspot.base_url}/crm/v4/associations/contacts/companies/batch/read",
        json={"inputs": [{"id": str(c)} for c in contacts]},
        headers={"Authorization": f"Bearer {hubspot.token}"},
        timeout=5,
    )
    assert answer.status_code == 207 and answer.json()["numErrors"] == 2
    assert {e["subCategory"] for e in answer.json()["errors"]} == {"crm.associations.NO_ASSOCIATIONS_FOUND"}


def test_other_batch_errors_fail_with_hubspots_message(hubspot: FakeHubSpot) -> None:
    contacts = hubspot.add("contacts", 2)
    error = {"status": "error", "category": "VALIDATION_ERROR", "message": "Unknown association type"}
    body = json.dumps({"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [error]})
    hubspot.fail(207, path="/crm/v4/associations/contacts/companies/batch/read", body=body)
    with pytest.raises(HubSpotError, match="Unknown association type"):
        client_for(hubspot).associations("contacts", "companies", [str(c) for c in contacts])


# --- long property lists (a real portal has hundreds) ------------------------------------------------
def test_the_look_alike_refuses_a_request_line_past_16000_characters(hubspot: FakeHubSpot) -> None:
    hubspot.add("contacts", 1)
    names = hubspot.add_portal_properties("contacts", 600)
    query = urlencode({"limit": 100, "properties": ",".join(names)})
    assert len(query) > MAX_REQUEST_LINE
    answer = requests.get(f"{hubspot.base_url}/crm/v3/objects/contacts?{query}", timeout=5)
    assert answer.status_code == 414 and "Request-URI Too Large" in answer.text


def test_properties_past_the_url_budget_are_read_by_id_in_the_body(hubspot: FakeHubSpot) -> None:
    ids = hubspot.add("contacts", 150)
    names = sorted(n for n, _, _ in hubspot.property_defs("contacts")) + hubspot.add_portal_properties(
        "contacts", 600
    )
    hubspot.archive("contacts", ids)
    pages = list(client_for(hubspot).list_objects("contacts", names, archived=True))
    records = [r for p in pages for r in p]
    assert [int(r["id"]) for r in records] == ids
    assert all(set(r["properties"]) == set(names) for r in records), "every property, none dropped"
    assert records[-1]["properties"][names[-1]] == f"v-{names[-1][-4:]}"
    gets = hubspot.requests_to("/crm/v3/objects/contacts")
    assert all(len(urlencode(r.query, doseq=True)) < URL_BUDGET + 100 for r in gets)
    reads = hubspot.requests_to("/crm/v3/objects/contacts/batch/read")
    assert (len(gets), len(reads)) == (2, 2), "one batch read per page, not one per property chunk"
    assert all(r.param("archived") == "true" for r in reads)


def test_search_carries_every_property_in_the_body(hubspot: FakeHubSpot) -> None:
    hubspot.add("contacts", 10)
    names = hubspot.add_portal_properties("contacts", 600)
    records = [r for p in client_for(hubspot).search_all("contacts", names) for r in p]
    assert len(records) == 10 and all(len(r["properties"]) == len(names) + 1 for r in records)


def test_the_look_alike_answers_like_hubspot_field_by_field(hubspot: FakeHubSpot) -> None:
    """Unknown property names are left out (not null, not an error); HubSpot's own 429 carries the
    RATE_LIMIT body and the rate-limit headers but no Retry-After; batch times are real."""
    hubspot.add("contacts", 1)
    auth = {"Authorization": f"Bearer {hubspot.token}"}
    page = requests.get(
        f"{hubspot.base_url}/crm/v3/objects/contacts",
        params={"properties": "email,no_such_property"},
        headers=auth,
        timeout=5,
    ).json()
    assert set(page["results"][0]["properties"]) == {"email", "hs_object_id"}
    hubspot.burst_limit = 1
    answers = [
        requests.get(f"{hubspot.base_url}/crm/v3/properties/contacts", headers=auth, timeout=5) for _ in "ab"
    ]
    throttled = answers[1]
    assert throttled.status_code == 429 and "Retry-After" not in throttled.headers
    assert (
        throttled.json()["errorType"] == "RATE_LIMIT"
        and throttled.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    )
    assert throttled.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert {"X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Remaining"} <= set(answers[0].headers)


def test_split_for_url_keeps_order_and_fits_the_budget() -> None:
    names = [f"property_{n:03d}" for n in range(100)]
    head, rest = split_for_url(names, 200)
    assert head + rest == names and head
    assert len(urlencode({"properties": ",".join(head)})) <= 200
    assert len(urlencode({"properties": ",".join(names[: len(head) + 1])})) > 200
    assert split_for_url(names[:3], 10_000) == (names[:3], [])


def test_a_record_the_batch_read_no_longer_finds_is_left_out(hubspot: FakeHubSpot) -> None:
    ids = hubspot.add("contacts", 3)
    hubspot.archive("contacts", ids)
    found = client_for(hubspot).batch_read(
        "contacts", [str(i) for i in [*ids, 999_999]], ["email"], archived=True
    )
    assert sorted(found) == [str(i) for i in ids]  # HubSpot answered 207 with the unknown id in errors


def test_merged_away_records_become_archived_rows_pointing_at_the_survivor(hubspot: FakeHubSpot) -> None:
    a, b, c = hubspot.add("contacts", 3)
    hubspot.merge("contacts", a, b)
    hubspot.merge("contacts", a, c)
    assert b not in hubspot.objects["contacts"] and c not in hubspot.objects["contacts"]
    survivor = [r for p in client_for(hubspot).search_all("contacts", ["hs_merged_object_ids"]) for r in p]
    assert [r["id"] for r in survivor] == [str(a)]
    rows = merged_away(survivor)
    assert [(r["id"], r["merged_into_id"], r["archived"]) for r in rows] == [
        (str(b), str(a), True),
        (str(c), str(a), True),
    ]
    assert rows[0]["archived_at"] == rows[0]["updated_at"] is not None


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
