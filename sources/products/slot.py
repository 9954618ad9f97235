"""The products source's change-capture settings, its connection, and its replication slot's health.

``[sources.products] change_capture = "logical"`` reads the tables through a PostgreSQL logical
replication slot (``slot_name``) and publication (``publication_name``); ``"cursor"`` (the default)
reads them by cursor. The set-up tool (``tools/postgres_cdc.py``) and ``python -m pipelines status``
resolve the settings and credentials here, as the source does (dlt's config chain: environment,
``.dlt/`` files, the vault), and the status reads the slot's retained WAL here, judged by
:func:`utils.checks.replication_slot` with the declaration's ``checks.replication_slot`` bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import dlt
import sqlalchemy as sa
from dlt.common.configuration.resolve import resolve_configuration
from dlt.sources.sql_database import engine_from_credentials

from declarations import declaration
from sources.products.capture import CAPTURE_MODES
from sources.products.errors import ProductsDatabaseError, describe, password_forms
from sources.products.source import clear_connection_errors, products_source
from utils import vault_provider
from utils.checks import CheckResult, replication_slot
from utils.pg_replication import read_slot
from utils.redact import redact_text

SECTION: Final = ("sources", "products")
CONNECT_TIMEOUT_SECONDS: Final = 10
"""An unreachable host fails the status and the tool in seconds, not after TCP's minutes."""


@dataclass(frozen=True)
class CaptureSettings:
    change_capture: str
    slot_name: str
    publication_name: str

    @property
    def logical(self) -> bool:
        return self.change_capture == "logical"


def logical_configured() -> bool:
    """Whether ``change_capture = "logical"``, read without resolving the rest (credentials)."""
    return (dlt.config.get("sources.products.change_capture", str) or "cursor") == "logical"


def capture_settings(config: Any) -> CaptureSettings:
    """``change_capture``, ``slot_name`` and ``publication_name`` of the source's resolved ``config``."""
    if config.change_capture not in CAPTURE_MODES:
        raise ValueError(
            f"sources.products.change_capture={config.change_capture!r}: use one of {CAPTURE_MODES}"
        )
    return CaptureSettings(config.change_capture, config.slot_name, config.publication_name)


def source_config() -> Any:
    """The products source's whole configuration (credentials, schema, tables...), resolved as a run
    resolves it; a missing setting raises dlt's error naming the key and where it was looked for."""
    vault_provider.register()  # the credentials may live in the vault (a no-op when off or done)
    spec = products_source.ref.SPEC
    return resolve_configuration(spec(), sections=(*SECTION, products_source.ref.name))


def connect(config: Any) -> sa.Engine:
    """An engine on the source's database whose failed connections raise
    :class:`~sources.products.errors.ProductsDatabaseError` naming host and database, never the password."""
    engine = engine_from_credentials(
        config.credentials, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    )
    return clear_connection_errors(engine)


def safe_error(engine: sa.Engine | None, exc: Exception) -> str:
    """``exc`` as one line without the connection's password."""
    if isinstance(exc, ProductsDatabaseError):
        return str(exc)
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
    if engine is None:
        return f"{type(exc).__name__}: {reason}"
    reason = redact_text(reason, password_forms(engine.url.password))
    return f"PostgreSQL {describe(engine.url)}: {reason}"


def slot_checks() -> list[CheckResult]:
    """The ``replication_slot`` check when ``change_capture = "logical"``, none otherwise. Never raises:
    an unreachable database or a bad setting is a ``warn`` saying so (the status still prints)."""
    engine: sa.Engine | None = None
    try:
        if not logical_configured():
            return []
        config = source_config()
        settings = capture_settings(config)
        bound = declaration("products").checks.replication_slot
        engine = connect(config)
        with engine.connect() as connection:
            health = read_slot(connection, settings.slot_name)
            database = str(connection.execute(sa.text("select current_database()")).scalar())
        return [replication_slot(health, settings.slot_name, bound, database)]
    except Exception as exc:  # the status and the checks flow carry on without the slot
        detail = f"cannot read the replication slot: {safe_error(engine, exc)}"
        return [CheckResult(None, "replication_slot", "warn", detail)]
    finally:
        if engine is not None:
            engine.dispose()
