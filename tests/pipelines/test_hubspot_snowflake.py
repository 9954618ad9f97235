"""The hubspot pipeline into Snowflake (emulator, or a real account with SNOWFLAKE_TESTS=real): merge
on id with nested association tables, incremental after a restore from the destination."""

from __future__ import annotations

import pytest

from pipelines import hubspot as pipeline
from tests.fakes.hubspot import FakeHubSpot
from tests.fixtures.snowflake import Snowflake

pytestmark = pytest.mark.snowflake


@pytest.fixture
def crm(hubspot: FakeHubSpot, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    monkeypatch.setenv("SOURCES__HUBSPOT__OBJECTS", '["contacts", "companies"]')
    ids = {"contacts": hubspot.add("contacts", 120), "companies": hubspot.add("companies", 5)}
    for n, contact in enumerate(ids["contacts"][:10]):
        hubspot.associate("contacts", "companies", contact, ids["companies"][n % 5])
    return ids


def test_first_load_lands_objects_and_association_tables(
    hubspot: FakeHubSpot, crm: dict[str, list[int]], snowflake: Snowflake
) -> None:
    report = pipeline.run()
    assert report.status == "succeeded" and report.destination == "snowflake"
    assert {"CONTACTS", "COMPANIES", "CONTACTS__ASSOCIATED_COMPANIES"} <= snowflake.tables("hubspot")
    assert snowflake.assert_unique("hubspot", "contacts", "id") == 120
    types = snowflake.columns("hubspot", "contacts")
    assert types["ID"] == "TEXT" and types["HS_OBJECT_ID"] == "NUMBER" and types["ARCHIVED"] == "BOOLEAN"
    assert types["UPDATED_AT"].startswith("TIMESTAMP")
    links = snowflake.table("hubspot", "contacts__associated_companies")
    assert snowflake.scalar(f"select count(distinct to_id) from {links}") == 5


def test_changes_merge_on_id_without_duplicates(
    hubspot: FakeHubSpot, crm: dict[str, list[int]], snowflake: Snowflake
) -> None:
    pipeline.run()
    hubspot.modify("contacts", crm["contacts"][:30], firstname="Renamed")
    hubspot.archive("contacts", crm["contacts"][-3:])
    report = pipeline.run()
    assert report.rows_by_table["contacts"] == 30 + 3
    assert snowflake.assert_unique("hubspot", "contacts", "id") == 120
    contacts = snowflake.table("hubspot", "contacts")
    assert snowflake.scalar(f"select count(*) from {contacts} where firstname = 'Renamed'") == 30
    assert snowflake.scalar(f"select count(*) from {contacts} where archived") == 3


def test_a_fresh_worker_carries_on_incrementally_from_snowflake(
    hubspot: FakeHubSpot, crm: dict[str, list[int]], snowflake: Snowflake
) -> None:
    pipeline.run()
    snowflake.restore_from_destination(pipeline.create_pipeline)
    hubspot.modify("contacts", crm["contacts"][:7], lastname="Moved")
    hubspot.reset()
    report = pipeline.run()
    assert report.rows_by_table.get("contacts") == 7, "the cursor came back from Snowflake: changes only"
    searches = hubspot.requests_to("/crm/v3/objects/contacts/search")
    assert searches and all(r.json()["sorts"][0]["propertyName"] == "lastmodifieddate" for r in searches), (
        "searched by modified time (changes only), not a full load by id"
    )
    assert snowflake.assert_unique("hubspot", "contacts", "id") == 120
