"""Secrets out of text: bearer tokens, secret query parameters and known secret values.

Kept apart from ``utils/http.py`` so that code which only redacts (the products source, alerts) does
not load dlt's REST client and the HTTP helpers on every run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_QUERY_KEYS = frozenset({"app_id", "api_key", "apikey", "hapikey", "token", "access_token", "key"})
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact_url(url: str) -> str:
    """Return ``url`` with the values of secret-looking query parameters replaced by ``***``."""
    parts = urlsplit(url)
    query = [(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in parse_qsl(parts.query, True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*,")))


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove bearer tokens and the given secret values from ``text``."""
    text = _BEARER.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
