"""Upstream keys from a declaration and the source's credentials: host and database, never a login."""

from __future__ import annotations

import logging

import pytest

from declarations import declaration
from utils.lineage import upstream_keys


def test_database_upstream_takes_host_and_database_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SOURCES__PRODUCTS__CREDENTIALS",
        "postgresql://dlt_reader:s3cret-pw@db.internal:5433/shop",  # pragma: allowlist secret
    )
    assert upstream_keys(declaration("products")) == ["postgres://db.internal/shop/public/products"]


def test_a_unix_socket_host_is_kept_as_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", "postgresql://reader@/shop?host=/run/postgresql")
    assert upstream_keys(declaration("products")) == ["postgres:///run/postgresql/shop/public/products"]


def test_without_credentials_the_upstream_is_left_out_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SOURCES__PRODUCTS__CREDENTIALS", raising=False)
    with caplog.at_level(logging.WARNING, logger="data_pipelines.lineage"):
        assert upstream_keys(declaration("products")) == []
    assert "postgres://{host}/{database}/public/products left out" in caplog.text


def test_api_upstreams_are_the_declared_urls() -> None:
    assert upstream_keys(declaration("hubspot")) == declaration("hubspot").upstream
