"""Errors of the products source that name where a read went, never the password."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, quote_plus

import sqlalchemy as sa


class ProductsDatabaseError(RuntimeError):
    """PostgreSQL could not be reached or read; the message names host and database, never the password."""


def password_forms(password: Any) -> list[str | None]:
    """The password as typed and as it appears percent-encoded inside a connection URL."""
    if not password:
        return []
    return [str(password), quote_plus(str(password)), quote(str(password), safe="")]


def describe(url: sa.URL) -> str:
    """``database "db" on host:port as user``: where a connection went, without the password."""
    host = url.host or url.query.get("host") or "localhost"
    if isinstance(host, tuple):
        host = host[0]
    port = f":{url.port}" if url.port else ""
    return f'database "{url.database}" on {host}{port} as {url.username}'
