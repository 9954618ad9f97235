"""HubSpot's answers checked before use: the error types, a ``RESTClient`` whose pages are checked, and
error messages a person can act on (401/403 name the missing scopes; bodies that are not the documented
shape fail loudly, without the token)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from dlt.sources.helpers.rest_client import RESTClient

from utils.http import ApiError, check_response, json_body, parse_json, sample_of
from utils.redact import redact_text


class HubSpotError(ApiError):
    """HubSpot answered with an error or with a body that is not the documented shape."""


class HubSpotAuthError(HubSpotError):
    """HubSpot refused the token (401) or the token lacks a scope (403)."""


class HubSpotRESTClient(RESTClient):
    """``RESTClient`` whose pages are checked before they are used: status, JSON, ``results`` list.

    Pages are read with ``hooks={"response": []}`` so that dlt's retrying session still sees 429/5xx
    (a raising hook would end the retries); the checks run here, once the retries are spent.
    """

    secrets: tuple[str, ...] = ()

    def extract_response(self, response: requests.Response, data_selector: Any) -> list[Any]:
        body = hubspot_json(response, "HubSpot page", self.secrets)
        results = body.get("results") if isinstance(body, dict) else None
        where = f"{response.request.method} {urlsplit(response.url).path}"
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise HubSpotError(
                f"HubSpot page: {where} returned no 'results' list of records (got {shape(body)})"
            )
        for index, record in enumerate(results):
            if record.get("id") in (None, ""):
                raise HubSpotError(
                    f"HubSpot page: {where} returned record {index} without an id "
                    f"(keys {sorted(record)[:10]}); a record without its primary key cannot be merged - "
                    "nothing from this run is loaded"
                )
            if not _is_object_id(record["id"]):
                raise HubSpotError(
                    f"HubSpot page: {where} returned record {index} with id {sample_of(record['id'])}, "
                    "not a numeric object id - nothing from this run is loaded"
                )
            if not isinstance(record.get("properties") or {}, dict):
                raise HubSpotError(
                    f"HubSpot page: {where} returned record {record['id']} whose properties are not an "
                    f"object ({sample_of(record['properties'])}) - nothing from this run is loaded"
                )
        return results


def _is_object_id(value: Any) -> bool:
    """HubSpot object ids are positive integers, sent as text (or, by some endpoints, as numbers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value > 0
    return isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19


def shape(body: Any) -> str:
    """What a body that is not the documented shape holds, for an error message."""
    if isinstance(body, dict):
        return f"keys {sorted(body)[:10]}"
    return f"a JSON {type(body).__name__}"


def hubspot_json(response: requests.Response, what: str, secrets: Iterable[str] = ()) -> Any:
    """The JSON body of a successful response, or a clear :class:`HubSpotError` without secrets."""
    try:
        if response.status_code in (401, 403):
            raise HubSpotAuthError(_auth_message(response, what))
        check_response(response, what)
        return parse_json(response, what)
    except ApiError as exc:
        cls = type(exc) if isinstance(exc, HubSpotError) else HubSpotError
        raise cls(redact_text(str(exc), secrets)) from None


def _auth_message(response: requests.Response, what: str) -> str:
    try:
        body = json_body(response)
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    scopes: list[str] = []
    for error in [body, *(body.get("errors") or [])]:
        context = error.get("context") if isinstance(error, dict) else None
        if isinstance(context, dict):
            for key in ("requiredGranularScopes", "requiredScopes", "missingScopes"):
                scopes += [str(s) for s in context.get(key) or [] if str(s) not in scopes]
    category = body.get("category") or ("INVALID_AUTHENTICATION" if response.status_code == 401 else "")
    path = urlsplit(response.url).path
    method = response.request.method
    head = f"{what}: HubSpot answered HTTP {response.status_code} {category} for {method} {path}"
    if response.status_code == 401:
        return (
            f"{head}: the private-app token was rejected (expired, rotated or wrong). Set a valid token "
            "in sources.hubspot.api_key (SOURCES__HUBSPOT__API_KEY)."
        )
    if scopes:
        return (
            f"{head}: the private app is missing a scope - grant one of {', '.join(scopes)} in HubSpot "
            "(Settings > Integrations > Private apps > Scopes), then run again."
        )
    message = body.get("message") or response.reason
    return f"{head}: {message} - check the private app's scopes for this object."
