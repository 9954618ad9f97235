"""HTTP plumbing shared by the API sources: retrying clients, clear errors, redacted URLs.

Clients are dlt's own ``RESTClient`` on dlt's retrying ``requests`` session, so retries, exponential
backoff and ``Retry-After`` follow the ``[runtime]`` settings in ``.dlt/config.toml``
(``request_max_attempts``, ``request_backoff_factor``, ``request_max_retry_delay``, ``request_timeout``).
What this module adds is error text a person can act on, with secrets removed (``utils/redact.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

import requests
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import AuthConfigBase

from utils.redact import redact_url


class ApiError(RuntimeError):
    """A provider's API answered in a way the source cannot use: an HTTP error or a malformed body."""


def sample_of(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages about what a provider sent: they
    must stay readable whatever arrived (a megabyte string, a 4,000-digit number)."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's digit limit for printing
        return f"<an integer of more than {sys.get_int_max_str_digits()} digits>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def loads(data: bytes | str) -> Any:
    """``json.loads`` where a body nested past the parser's depth limit is a ``ValueError`` like any other
    malformed JSON. The standard library's C parser is used rather than ``response.json()`` (simplejson,
    pure Python here): recursing a Python parser to the limit also breaks unrelated finalisers."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested deeper than the parser's limit") from None


def json_body(response: requests.Response) -> Any:
    """The decoded JSON body of ``response``; ``ValueError`` if it is not JSON (any depth, any size)."""
    return loads(response.content)


def api_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    auth: AuthConfigBase | None = None,
) -> RESTClient:
    """A ``RESTClient`` for ``base_url`` on dlt's retrying session (429, 5xx and dropped connections).

    The session does not raise on HTTP errors itself: :func:`check_response` turns them into
    :class:`ApiError` with the provider's own message, after the retries are spent.
    """
    client = Client(raise_for_status=False)
    client.configure()  # picks up the [runtime] request_* settings (config.toml, env)
    return RESTClient(
        base_url=base_url.rstrip("/"), headers=dict(headers or {}), auth=auth, session=client.session
    )


def check_response(response: requests.Response, what: str) -> requests.Response:
    """Raise :class:`ApiError` naming ``what``, the status and the provider's message if not 2xx."""
    if response.ok:
        return response
    message = _provider_message(response)
    raise ApiError(
        f"{what}: {response.request.method} {redact_url(response.url)} answered HTTP "
        f"{response.status_code} {response.reason}{f' - {message}' if message else ''}"
        f"{_advice(response.status_code)}"
    )


def parse_json(response: requests.Response, what: str) -> Any:
    """Decode a JSON body or raise :class:`ApiError` saying what came back instead."""
    try:
        return json_body(response)
    except ValueError as exc:
        content_type = response.headers.get("Content-Type", "no content type")
        sample = response.text[:120].replace("\n", " ")
        raise ApiError(
            f"{what}: {redact_url(response.url)} returned a body that is not valid JSON "
            f"({content_type}, {len(response.content)} bytes, starts {sample!r}): {exc}"
        ) from None


def get_json(client: RESTClient, path: str, what: str, params: Mapping[str, Any] | None = None) -> Any:
    """GET ``path`` with retries and return its JSON body, or raise a clear :class:`ApiError`."""
    try:
        response = client.get(path, params=dict(params or {}))
    except requests.RequestException as exc:
        raise ApiError(
            f"{what}: could not reach {redact_url(client.base_url + '/' + path.lstrip('/'))}: "
            f"{type(exc).__name__}"
        ) from None
    return parse_json(check_response(response, what), what)


def _provider_message(response: requests.Response) -> str:
    try:
        body = json_body(response)
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        for key in ("message", "error", "description"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return json.dumps(body)[:200]


def _advice(status: int) -> str:
    if status in (401, 403):
        return " (check the credentials and their scopes/permissions)"
    if status == 429:
        return " (rate limited; retries with backoff were exhausted - try later or lower the request rate)"
    if status >= 500:
        return " (the provider is failing; retries with backoff were exhausted - try again later)"
    return ""
