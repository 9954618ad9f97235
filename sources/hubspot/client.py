"""HubSpot CRM v3 client: bearer auth, paging, client-side rate limiting, search windowing, clear errors.

Built on dlt's ``RESTClient`` and ``JSONResponseCursorPaginator`` over the retrying session from
``utils.http.api_client`` (429 with ``Retry-After``, 5xx and dropped connections retried with backoff).
This module adds what is particular to HubSpot:

- 429 without ``Retry-After`` (HubSpot often sends none): the wait HubSpot's policy implies is added
  as ``Retry-After`` (1 s for search, the 10 s rolling window otherwise) before dlt's retry reads it;
- a sliding-window limiter per app (burst limit, default 100 requests per 10 s) and a second one for
  the search endpoints (default 4 per second), applied to every HTTP attempt, retries included; each
  waits only until the oldest request in its window has left it (both in ``limits.py``);
- errors a person can act on: 401/403 name the scopes HubSpot says are missing
  (``errors[].context.requiredGranularScopes``), a page that is not the documented shape fails loudly;
- search windowing: one search query returns at most 10,000 results, so a long change window is read
  as several queries, each restarting at the last timestamp seen (ties at the boundary are skipped by
  id; a single timestamp with more changes than the cap is drained by ``hs_object_id``);
- long property lists: a real portal has hundreds of properties and HubSpot answers 414 past about
  16,000 characters of request line, so property names travel in request bodies (search, batch read)
  wherever the API allows; the archived listing (GET only) carries what fits in ``URL_BUDGET`` and
  reads the rest by id with the batch read;
- multi-status: batch reads answer 207 with an ``errors`` list; ids without associations
  (``NO_ASSOCIATIONS_FOUND``) are expected, any other error fails the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Final
from urllib.parse import quote

import pendulum
import requests
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

from sources.hubspot.errors import HubSpotAuthError, HubSpotError, HubSpotRESTClient, hubspot_json, shape
from sources.hubspot.limits import WINDOW_MARGIN, RateLimitedAdapter, SlidingWindowLimiter
from utils.http import api_client, sample_of

PAGE_SIZE: Final = 100
"""The most records HubSpot returns per list page (and ids per object batch read)."""
SEARCH_PAGE_SIZE: Final = 200
"""The most records HubSpot returns per search page."""
URL_BUDGET: Final = 8_000
"""Characters of ``properties=`` a GET may carry: half of the ~16,000-character request line past which
HubSpot answers 414 (connectors report 414s from about 8,000 to 16,000)."""
BENIGN_BATCH_ERRORS: Final = frozenset({"crm.associations.NO_ASSOCIATIONS_FOUND"})
"""Batch-read errors that only say an id has nothing to return (HTTP 207, not a failure)."""
SEARCH_RESULT_CAP: Final = 10_000
"""HubSpot's search endpoints return at most this many results per query, however many match."""
ASSOCIATION_BATCH: Final = 1_000
MIN_MS: Final = -62_135_596_800_000
MAX_MS: Final = 253_402_300_799_999
"""Epoch milliseconds of 0001-01-01 and 9999-12-31 23:59:59.999 UTC: the range a timestamp column holds."""
"""The most ids one association batch read accepts."""


class HubSpotClient:
    """The HubSpot CRM v3 calls the source needs, rate limited and counted (``requests_made``)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.hubapi.com",
        *,
        requests_per_10_seconds: int = 100,
        search_requests_per_second: int = 4,
        search_result_cap: int = SEARCH_RESULT_CAP,
    ) -> None:
        if not api_key:
            raise HubSpotAuthError(
                "HubSpot: no private-app token; set sources.hubspot.api_key in .dlt/secrets.toml "
                "or SOURCES__HUBSPOT__API_KEY"
            )
        self.search_result_cap = search_result_cap
        self.requests_made: Counter[str] = Counter()
        """Requests sent, by kind (search, list, batch_read, associations, properties)."""
        self.requests_by_object: Counter[str] = Counter()
        """Requests sent, by the CRM object (or ``owners``, ``pipelines``, ``schemas``) they read."""
        self.general_limiter = SlidingWindowLimiter(requests_per_10_seconds, 10.0 + WINDOW_MARGIN)
        self.search_limiter = SlidingWindowLimiter(search_requests_per_second, 1.0 + WINDOW_MARGIN)
        session = api_client(base_url).session
        self._adapter = RateLimitedAdapter(
            self.general_limiter, self.search_limiter, self.requests_made, self.requests_by_object
        )
        session.mount(base_url.rstrip("/") + "/", self._adapter)
        self._rest = HubSpotRESTClient(
            base_url=base_url.rstrip("/"),
            auth=BearerTokenAuth(api_key),
            session=session,
            headers={"Accept": "application/json"},
        )
        self._rest.secrets = (api_key,)
        self._secrets = (api_key,)

    def count_into(self, counts: dict[str, int]) -> None:
        """Also count the requests by object into ``counts`` (a caller's dict, read after the run)."""
        self._adapter.extra = counts

    # ------------------------------------------------------------------------------------------------
    def properties(self, object_type: str) -> list[dict[str, Any]]:
        """Every property of ``object_type`` (``GET /crm/v3/properties/{object}``)."""
        what = f"HubSpot {object_type} properties"
        response = self._send("GET", f"crm/v3/properties/{object_type}", what)
        body = hubspot_json(response, what, self._secrets)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or not all(isinstance(p, dict) and "name" in p for p in results):
            raise HubSpotError(f"{what}: expected a 'results' list of properties with names")
        return results

    def results(self, path: str, what: str) -> list[dict[str, Any]]:
        """The ``results`` list of an answer that is not paged (``GET``), each item an object."""
        body = hubspot_json(self._send("GET", path, what), what, self._secrets)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise HubSpotError(f"{what}: expected a 'results' list of objects (got {shape(body)})")
        return results

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Pages of a ``GET`` listing with an ``after`` cursor; each item checked for a numeric ``id``."""
        yield from self._pages("GET", path, params=params)

    def post(
        self, path: str, what: str, body: dict[str, Any], *, benign: frozenset[str]
    ) -> list[dict[str, Any]]:
        """The ``results`` of a batch ``POST`` (200, or 207 whose errors are all ``benign``)."""
        answer = hubspot_json(self._send("POST", path, what, json=body), what, self._secrets)
        return _batch_results(answer, what, benign=benign)

    def list_objects(
        self, object_type: str, properties: Sequence[str], *, archived: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of every record (``GET /crm/v3/objects/{object}``, ``limit=100``, ``after`` cursor).

        The properties that do not fit in :data:`URL_BUDGET` are read for each page by id with the
        batch read (properties in the body), so the record is complete whatever the property count.
        A record the batch read no longer finds (restored or purged between the two calls) is left out:
        a restore is a change, so the next search reads it.
        """
        head, rest = split_for_url(properties, URL_BUDGET)
        params = {"limit": PAGE_SIZE, "properties": ",".join(head), "archived": str(archived).lower()}
        for page in self._pages("GET", f"crm/v3/objects/{object_type}", params=params):
            if rest and page:
                found = self.batch_read(object_type, [str(r["id"]) for r in page], rest, archived=archived)
                page = [
                    {**r, "properties": {**(r.get("properties") or {}), **found[str(r["id"])]}}
                    for r in page
                    if str(r["id"]) in found
                ]
            yield page

    def search_all(self, object_type: str, properties: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
        """Pages of every live record by ``hs_object_id`` through search (200 a page, properties in the
        body): no request line limit, half the requests of listing by 100. Each query stops at the
        search cap; the next starts after the last id read."""
        after_id = 0
        while True:
            fetched = 0
            filters = [_filter("hs_object_id", "GT", after_id)]
            for page in self._search(object_type, filters, "hs_object_id", properties):
                fetched += len(page)
                after_id = max([after_id, *(int(r["id"]) for r in page)])
                yield page
            if fetched < self.search_result_cap:
                return

    def batch_read(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str], *, archived: bool = False
    ) -> dict[str, dict[str, Any]]:
        """``{id: properties}`` for ``ids`` (``POST .../batch/read``, 100 ids per request); ids HubSpot
        cannot find (207 ``errors``) are absent."""
        what = f"HubSpot {object_type} batch read"
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), PAGE_SIZE):
            body = {
                "inputs": [{"id": i} for i in ids[start : start + PAGE_SIZE]],
                "properties": list(properties),
            }
            path = f"crm/v3/objects/{object_type}/batch/read?archived={str(archived).lower()}"
            answer = hubspot_json(self._send("POST", path, what, json=body), what, self._secrets)
            for record in _batch_results(answer, what, benign=frozenset({"OBJECT_NOT_FOUND"})):
                found[str(record["id"])] = record.get("properties") or {}
        return found

    def search_modified(
        self,
        object_type: str,
        cursor_property: str,
        properties: Sequence[str],
        since_ms: int,
        until_ms: int,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of records with ``since_ms <= cursor_property < until_ms``, oldest change first.

        Each query stops at the search cap; the next restarts at the last timestamp seen, skipping the
        ids already returned at that timestamp, so nothing is lost or returned twice however many
        records changed. If one timestamp alone holds a full query, its records are read by id.
        """
        seen_at_since: set[str] = set()
        while since_ms < until_ms:
            fetched, last_ms = 0, since_ms
            ids_at_last: set[str] = set()
            filters = [
                _filter(cursor_property, "GTE", since_ms),
                _filter(cursor_property, "LT", until_ms),
            ]
            for page in self._search(object_type, filters, cursor_property, properties):
                fetched += len(page)
                fresh = []
                for record in page:
                    modified = _modified_ms(record, cursor_property)
                    if modified > last_ms:
                        last_ms, ids_at_last = modified, set()
                    ids_at_last.add(str(record["id"]))
                    if not (modified == since_ms and str(record["id"]) in seen_at_since):
                        fresh.append(record)
                if fresh:
                    yield fresh
            if fetched < self.search_result_cap:
                return
            if last_ms == since_ms:
                ids_at_last |= seen_at_since
            if len(ids_at_last) >= fetched:  # one instant filled the query: read that instant by id
                yield from self._drain_instant(object_type, cursor_property, properties, last_ms, ids_at_last)
                since_ms, seen_at_since = last_ms + 1, set()
            else:
                since_ms, seen_at_since = last_ms, ids_at_last

    def associations(
        self, from_type: str, to_type: str, ids: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Associations of ``ids`` to ``to_type`` (v4 batch read, 1,000 ids per request, paged per id)."""
        what = f"HubSpot {from_type} -> {to_type} associations"
        found: dict[str, list[dict[str, Any]]] = {}
        pending: list[dict[str, str]] = [{"id": str(i)} for i in ids]
        while pending:
            batch, pending = pending[:ASSOCIATION_BATCH], pending[ASSOCIATION_BATCH:]
            path = f"crm/v4/associations/{from_type}/{to_type}/batch/read"
            body = hubspot_json(self._send("POST", path, what, json={"inputs": batch}), what, self._secrets)
            for result in _batch_results(body, what, benign=BENIGN_BATCH_ERRORS):
                from_id = str(result["from"]["id"])
                for target in result.get("to") or []:
                    for kind in target.get("associationTypes") or [{}]:
                        found.setdefault(from_id, []).append(
                            {
                                "from_id": from_id,
                                "to_id": str(target["toObjectId"]),
                                "type_id": kind.get("typeId"),
                                "category": kind.get("category"),
                                "label": kind.get("label"),
                            }
                        )
                after = ((result.get("paging") or {}).get("next") or {}).get("after")
                if after:
                    pending.append({"id": from_id, "after": str(after)})
        return found

    # ------------------------------------------------------------------------------------------------
    def _drain_instant(
        self,
        object_type: str,
        cursor_property: str,
        properties: Sequence[str],
        instant_ms: int,
        already: set[str],
    ) -> Iterator[list[dict[str, Any]]]:
        after_id = 0
        while True:
            fetched = 0
            filters = [
                _filter(cursor_property, "GTE", instant_ms),
                _filter(cursor_property, "LT", instant_ms + 1),
                _filter("hs_object_id", "GT", after_id),
            ]
            for page in self._search(object_type, filters, "hs_object_id", properties):
                fetched += len(page)
                after_id = max([after_id, *(int(r["id"]) for r in page)])
                fresh = [r for r in page if str(r["id"]) not in already]
                if fresh:
                    yield fresh
            if fetched < self.search_result_cap:
                return

    def _search(
        self, object_type: str, filters: list[dict[str, str]], sort_by: str, properties: Sequence[str]
    ) -> Iterator[list[dict[str, Any]]]:
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort_by, "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": min(SEARCH_PAGE_SIZE, self.search_result_cap),
            "after": "0",
        }
        fetched = 0
        for page in self._pages("POST", f"crm/v3/objects/{object_type}/search", json=body):
            fetched += len(page)
            yield page
            if fetched >= self.search_result_cap:  # asking for more would be refused (HTTP 400)
                return

    def _pages(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        paginator = JSONResponseCursorPaginator(
            cursor_path="paging.next.after",
            cursor_param="after" if method == "GET" else None,
            cursor_body_path="after" if method == "POST" else None,
        )
        pages = self._rest.paginate(
            path,
            method="POST" if method == "POST" else "GET",
            params=params,
            json=json,
            paginator=paginator,
            data_selector="results",
            hooks={"response": []},
        )
        try:
            for page in pages:
                yield list(page)
        except requests.RequestException as exc:
            raise HubSpotError(
                f"HubSpot: could not reach {method} /{path}: {type(exc).__name__} (retries exhausted)"
            ) from None

    def _send(
        self, method: str, path: str, what: str, *, json: dict[str, Any] | None = None
    ) -> requests.Response:
        try:
            return self._rest.request(path, method="POST" if method == "POST" else "GET", json=json)
        except requests.RequestException as exc:
            raise HubSpotError(
                f"{what}: could not reach {method} /{path}: {type(exc).__name__} (retries exhausted)"
            ) from None


def split_for_url(properties: Sequence[str], budget: int) -> tuple[list[str], list[str]]:
    """The leading property names whose ``properties=`` parameter fits in ``budget`` characters once
    URL-encoded (commas become ``%2C``), and the rest."""
    used, head = len("properties="), 0
    for name in properties:
        cost = len(quote(name, safe="")) + (3 if head else 0)
        if used + cost > budget:
            break
        used, head = used + cost, head + 1
    return list(properties[:head]), list(properties[head:])


def _batch_results(body: Any, what: str, *, benign: frozenset[str]) -> list[dict[str, Any]]:
    """The ``results`` of a batch answer (200, or 207 with ``errors``); an error whose category or
    sub-category is not ``benign`` fails with HubSpot's own message."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise HubSpotError(f"{what}: expected a 'results' list (got {shape(body)})")
    for error in body.get("errors") or []:
        kinds = (
            {str(error.get("subCategory")), str(error.get("category"))} if isinstance(error, dict) else set()
        )
        if not kinds & benign:
            message = error.get("message") if isinstance(error, dict) else error
            raise HubSpotError(f"{what}: HubSpot reported an error for part of the batch: {message}")
    return results


def _filter(property_name: str, operator: str, value: int) -> dict[str, str]:
    return {"propertyName": property_name, "operator": operator, "value": str(value)}


def _modified_ms(record: dict[str, Any], cursor_property: str) -> int:
    properties = record.get("properties") or {}
    value = (properties.get(cursor_property) if isinstance(properties, dict) else None) or record.get(
        "updatedAt"
    )
    if not value:
        raise HubSpotError(f"HubSpot record {record.get('id')} has no {cursor_property}")
    return to_ms(value)


def to_ms(value: Any) -> int:
    """Epoch milliseconds from HubSpot's ISO 8601 timestamps (or epoch milliseconds); anything else,
    or a time outside years 1-9999, is a :class:`HubSpotError`."""
    ms: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        ms = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        ms = int(value)
    elif isinstance(value, str):
        try:
            parsed = pendulum.parse(value)
        except (ValueError, OverflowError, pendulum.parsing.exceptions.ParserError):
            parsed = None
        if isinstance(parsed, pendulum.DateTime):
            ms = round(parsed.timestamp() * 1000)
    if ms is None or not MIN_MS <= ms <= MAX_MS:
        raise HubSpotError(f"HubSpot timestamp {sample_of(value)} is not a date and time")
    return ms
