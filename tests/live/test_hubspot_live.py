"""Read-only smoke test of the hubspot client against the real HubSpot API (opt-in).

Skipped unless ``LIVE_TESTS=1`` and ``LIVE_HUBSPOT_TOKEN`` (a private-app token with the read scopes
of contacts, companies and deals) are set; CI has no internet and skips it. It reads properties, one
page of each object (with every property, so the URL budget and the batch read meet the real API),
one search page and one association read; it never writes.

    LIVE_TESTS=1 LIVE_HUBSPOT_TOKEN=pat-... uv run pytest -m live tests/live/test_hubspot_live.py
"""

from __future__ import annotations

import itertools
import os
import time

import pytest

from sources.hubspot import HubSpotClient
from sources.hubspot.reference import REFERENCE_OBJECTS, owners, pipelines
from sources.hubspot.source import DEFAULT_OBJECTS, LAST_MODIFIED

CRM_OBJECTS = [o for o in DEFAULT_OBJECTS if o not in REFERENCE_OBJECTS]

TOKEN = os.environ.get("LIVE_HUBSPOT_TOKEN", "")
BASE_URL = os.environ.get("LIVE_HUBSPOT_BASE_URL", "https://api.hubapi.com")
"""Point it at the look-alike (``python -m tests.fakes.hubspot``) to dry-run this file offline."""
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("LIVE_TESTS") != "1" or not TOKEN,
        reason="live HubSpot test: set LIVE_TESTS=1 and LIVE_HUBSPOT_TOKEN",
    ),
]


@pytest.fixture(scope="module")
def client() -> HubSpotClient:
    return HubSpotClient(TOKEN, BASE_URL, requests_per_10_seconds=50, search_requests_per_second=2)


@pytest.fixture(scope="module")
def properties(client: HubSpotClient) -> dict[str, list[str]]:
    return {o: sorted(str(p["name"]) for p in client.properties(o)) for o in CRM_OBJECTS}


@pytest.mark.parametrize("object_type", CRM_OBJECTS)
def test_properties_have_names_and_types(client: HubSpotClient, object_type: str) -> None:
    found = client.properties(object_type)
    assert found and all(p.get("name") and p.get("type") for p in found)
    assert LAST_MODIFIED.get(object_type, "hs_lastmodifieddate") in {p["name"] for p in found}


@pytest.mark.parametrize("object_type", CRM_OBJECTS)
def test_one_page_with_every_property(
    client: HubSpotClient, properties: dict[str, list[str]], object_type: str
) -> None:
    page = next(iter(client.list_objects(object_type, properties[object_type])), [])
    assert all(r["id"] and set(r["properties"]) <= {*properties[object_type], "hs_object_id"} for r in page)


def test_one_search_page_with_every_property(client: HubSpotClient, properties: dict[str, list[str]]) -> None:
    names = properties["contacts"]
    now_ms = int(time.time() * 1000)
    pages = client.search_modified("contacts", "lastmodifieddate", names, now_ms - 30 * 86_400_000, now_ms)
    page = next(iter(pages), [])
    assert len(page) <= 200 and all("lastmodifieddate" in r["properties"] for r in page)


def test_association_read_accepts_multi_status(client: HubSpotClient) -> None:
    page = next(iter(client.search_all("contacts", ["email"])), [])
    ids = [str(r["id"]) for r in itertools.islice(page, 50)]
    linked = client.associations("contacts", "companies", ids)  # 207 for contacts without a company
    assert set(linked) <= set(ids)


def test_owners_and_pipelines_parse(client: HubSpotClient) -> None:
    listed = [o for page in owners(client) for o in page]
    assert all(o["id"] and isinstance(o["archived"], bool) for o in listed)
    stages = [s for page in pipelines(client) for p in page for s in p["stages"]]
    assert stages and all(s["id"] and "metadata" not in s for s in stages)
