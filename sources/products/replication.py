"""The replication slot and publication of the products source's change data capture.

What a run learns from the stream (:func:`read_changes`) is which keys of which tables changed, which
tables were truncated, and the WAL position reached; the rows themselves are re-read from the tables
(docs/products.md, "Change data capture"). The slot is confirmed (:func:`confirm`) only by the
pipeline, after the load that carried those changes committed: a run stopped anywhere before leaves
the slot where it was, and the next run reads the same changes again.

Connections are psycopg2's (its replication protocol support, ``LogicalReplicationConnection``), made
from the source's SQLAlchemy URL; errors name the database, never the password.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa

from sources.products.errors import ProductsDatabaseError, describe, password_forms
from sources.products.pgoutput import UNCHANGED, Change, Commit, Decoder, Relation, Truncate
from utils.pg_replication import identifier
from utils.redact import redact_text

logger = logging.getLogger("data_pipelines.products.replication")

SETUP_COMMAND: Final = "uv run python -m tools.postgres_cdc setup"
CHECK_COMMAND: Final = "uv run python -m tools.postgres_cdc check"
DEFAULT_SLOT: Final = "data_pipelines_products"
DEFAULT_PUBLICATION: Final = "data_pipelines_products"
READ_TIMEOUT_SECONDS: Final = 60.0
"""Longest a run waits for the server to move towards the run's target (a message, or a keepalive
reporting a later position) before it stops where it got to."""
POLL_SECONDS: Final = 1.0
BUSY_SECONDS: Final = 15.0
"""Longest a run waits for a slot still held by another connection (a run killed a moment ago)."""


class CaptureSetupError(ProductsDatabaseError):
    """The publication (or the slot's plug-in) is not what change capture needs; nothing was loaded."""


def lsn_text(lsn: int) -> str:
    """A WAL position as PostgreSQL writes it (``16/B374D848``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_int(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass
class ChangeSet:
    """What the stream said between the slot's position and ``reached``, per table name."""

    start: int = 0
    reached: int = 0
    keys: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    undecodable: set[str] = field(default_factory=set)
    """Tables whose changes did not carry the configured key (a key other than the replica identity):
    they are read again in full."""
    changes: int = 0


@dataclass(frozen=True)
class SlotInfo:
    confirmed: int
    plugin: str
    active_pid: int | None


def _connect_args(engine: sa.Engine) -> tuple[list[Any], dict[str, Any]]:
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    return list(cargs), dict(cparams)


def _failure(engine: sa.Engine, doing: str, exc: BaseException) -> ProductsDatabaseError:
    reason = redact_text(str(exc).strip(), password_forms(engine.url.password))
    return ProductsDatabaseError(f"products: {doing} on PostgreSQL {describe(engine.url)} failed: {reason}")


@contextmanager
def _plain(engine: sa.Engine, doing: str) -> Iterator[Any]:
    """An autocommit psycopg2 cursor on the source database."""
    import psycopg2

    cargs, cparams = _connect_args(engine)
    try:
        connection = psycopg2.connect(*cargs, **cparams)
    except psycopg2.Error as exc:
        raise _failure(engine, doing, exc) from None
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            yield cursor
    except psycopg2.Error as exc:
        raise _failure(engine, doing, exc) from None
    finally:
        connection.close()


def publication_exists(cursor: Any, publication: str) -> bool:
    cursor.execute("select 1 from pg_catalog.pg_publication where pubname = %s", (publication,))
    return cursor.fetchone() is not None


def publication_tables(cursor: Any, publication: str, schema: str) -> set[str]:
    """The tables of ``schema`` the publication holds (partitions listed as their own tables)."""
    cursor.execute(
        "select tablename from pg_catalog.pg_publication_tables where pubname = %s and schemaname = %s",
        (publication, schema),
    )
    return {str(row[0]) for row in cursor.fetchall()}


def slot_info(cursor: Any, slot: str) -> SlotInfo | None:
    cursor.execute(
        "select confirmed_flush_lsn::text, plugin, active_pid from pg_catalog.pg_replication_slots"
        " where slot_name = %s and database = current_database()",
        (slot,),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return SlotInfo(lsn_int(row[0]) if row[0] else 0, str(row[1]), row[2])


def missing_publication(publication: str) -> CaptureSetupError:
    return CaptureSetupError(
        f"products: change_capture = logical, but the publication {publication!r} does not exist;"
        f" nothing was loaded. Create it and the slot with `{SETUP_COMMAND}`, or print the SQL for a DBA"
        f" with `{SETUP_COMMAND} --print-sql` (it publishes only the tables PostgreSQL can identify the"
        " rows of, so that the application's own updates and deletes keep working)"
    )


@dataclass(frozen=True)
class Prepared:
    """The publication's tables and the slot's state before this run read anything."""

    published: set[str]
    slot: SlotInfo
    created: bool


def prepare(engine: sa.Engine, schema: str, publication: str, slot: str) -> Prepared:
    """Check the publication and make sure the slot exists (created here when it does not: a slot
    made by the set-up command is used as it is)."""
    with _plain(engine, "checking the publication and the replication slot") as cursor:
        if not publication_exists(cursor, publication):
            raise missing_publication(publication)
        published = publication_tables(cursor, publication, schema)
        info = _released(cursor, slot)
    created = False
    if info is None:
        create_slot(engine, slot)
        created = True
        with _plain(engine, "reading the replication slot") as cursor:
            info = slot_info(cursor, slot)
        if info is None:
            raise CaptureSetupError(
                f"products: a replication slot named {slot!r} exists in another database of this server;"
                " slot names are server-wide: set [sources.products] slot_name to another name"
            )
    if info.plugin != "pgoutput":
        raise CaptureSetupError(
            f"products: the replication slot {slot!r} uses the {info.plugin} plug-in, not pgoutput; drop it"
            f" (`uv run python -m tools.postgres_cdc drop`) and run again"
        )
    return Prepared(published, info, created)


def _released(cursor: Any, slot: str) -> SlotInfo | None:
    """The slot once no connection holds it (a server process outlives its client by a moment)."""
    info = slot_info(cursor, slot)
    deadline = time.monotonic() + BUSY_SECONDS
    while info is not None and info.active_pid is not None:
        if time.monotonic() > deadline:
            raise CaptureSetupError(
                f"products: the replication slot {slot!r} is in use by server process {info.active_pid}"
                " (another run of this pipeline, or another client); nothing was loaded - wait for it"
                " to finish"
            )
        time.sleep(0.05)
        info = slot_info(cursor, slot)
    return info


def create_slot(engine: sa.Engine, slot: str) -> None:
    """Create the ``pgoutput`` slot on a replication connection (its exported snapshot is not used:
    rows are read after the slot exists, and re-reading makes the overlap harmless)."""
    import psycopg2
    import psycopg2.extras

    cargs, cparams = _connect_args(engine)
    try:
        connection = psycopg2.connect(
            *cargs, **cparams, connection_factory=psycopg2.extras.LogicalReplicationConnection
        )
        try:
            with connection.cursor() as cursor:
                cursor.create_replication_slot(slot, output_plugin="pgoutput")
        finally:
            connection.close()
    except psycopg2.errors.DuplicateObject:
        return  # another run created it meanwhile
    except psycopg2.Error as exc:
        raise _failure(engine, f"creating the replication slot {slot}", exc) from None
    logger.warning("products: created the replication slot %s", slot)


def read_changes(
    engine: sa.Engine,
    slot: str,
    publication: str,
    *,
    timeout: float = READ_TIMEOUT_SECONDS,
    keys: dict[str, tuple[str, ...]] | None = None,
    schema: str = "public",
) -> ChangeSet:
    """Read the slot's changes from its confirmed position up to the server's WAL position at the
    start of this call, without confirming anything. ``keys`` gives each table's key columns (by
    the name of a table of ``schema``; other tables are ignored)."""
    import psycopg2
    import psycopg2.extras

    keys = keys or {}
    cargs, cparams = _connect_args(engine)
    changes = ChangeSet()
    decoder = Decoder()
    try:
        connection = psycopg2.connect(
            *cargs, **cparams, connection_factory=psycopg2.extras.LogicalReplicationConnection
        )
    except psycopg2.Error as exc:
        raise _failure(engine, "opening a replication connection", exc) from None
    try:
        cursor = connection.cursor()
        cursor.execute("IDENTIFY_SYSTEM")
        target = lsn_int(cursor.fetchone()[2])
        cursor.start_replication(
            slot_name=slot,
            decode=False,
            # an identifier list to pgoutput: quoted, so that the name is taken exactly as written
            options={"proto_version": "1", "publication_names": identifier(publication)},
        )
        _consume(
            cursor, decoder, changes, target, {(schema, name): key for name, key in keys.items()}, timeout
        )
    except psycopg2.Error as exc:
        raise _failure(engine, f"reading the replication slot {slot}", exc) from None
    finally:
        connection.close()
    with _plain(engine, "releasing the replication slot") as cursor:
        _released(cursor, slot)  # free for the confirmation and the next reader
    return changes


def _consume(
    cursor: Any,
    decoder: Decoder,
    changes: ChangeSet,
    target: int,
    keys: dict[tuple[str, str], tuple[str, ...]],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    in_transaction = False
    asked = 0.0
    seen = 0
    while True:
        message = cursor.read_message()
        if message is None:
            if not in_transaction and cursor.wal_end >= target:
                changes.reached = max(changes.reached, cursor.wal_end)
                return
            if cursor.wal_end > seen:  # the server is still decoding towards the target: keep waiting
                seen = cursor.wal_end
                deadline = time.monotonic() + timeout
            if time.monotonic() > deadline:
                logger.warning(
                    "products: no progress towards WAL position %s for %.0f s; stopping at %s",
                    lsn_text(target),
                    timeout,
                    lsn_text(changes.reached),
                )
                return
            if time.monotonic() - asked > POLL_SECONDS:
                cursor.send_feedback(reply=True)  # asks for a keepalive carrying the server's position
                asked = time.monotonic()
            select.select([cursor], [], [], POLL_SECONDS)
            continue
        deadline = time.monotonic() + timeout
        meaning = decoder.decode(message.payload)
        in_transaction = True
        if isinstance(meaning, Commit):
            in_transaction = False
            changes.reached = max(changes.reached, meaning.end_lsn)
            if meaning.end_lsn >= target:
                return
        elif isinstance(meaning, Change):
            _record(decoder.relations[meaning.relation], meaning, changes, keys)
        elif isinstance(meaning, Truncate):
            for oid in meaning.relations:
                relation = decoder.relations.get(oid)
                if relation is not None and (relation.schema, relation.name) in keys:
                    changes.truncated.add(relation.name)


def _record(
    relation: Relation, change: Change, changes: ChangeSet, keys: dict[tuple[str, str], tuple[str, ...]]
) -> None:
    """Note the key before (a delete, a key-changing update) and after (an insert, an update) the change."""
    key = keys.get((relation.schema, relation.name))
    if key is None:
        return
    changes.changes += 1
    if not set(key) <= set(relation.identity):
        # an update of a key column outside the replica identity sends no old row: its old key would
        # stay in the warehouse, so the table is read in full and swept instead
        changes.undecodable.add(relation.name)
        return
    found = changes.keys.setdefault(relation.name, set())
    for row in (change.old, change.new):
        if row is None:
            continue
        values = tuple(row.get(column, UNCHANGED) for column in key)
        if all(isinstance(value, str) for value in values):
            found.add(values)  # type: ignore[arg-type]
        else:  # the configured key is not the replica identity, or a key value left out of line
            changes.undecodable.add(relation.name)


def confirm(engine: sa.Engine, slot: str, lsn: int) -> None:
    """Tell the slot everything up to ``lsn`` is loaded, so PostgreSQL may recycle that WAL."""
    with _plain(engine, f"confirming the replication slot {slot}") as cursor:
        info = _released(cursor, slot)
        if info is None or info.confirmed >= lsn:
            return
        cursor.execute("select pg_replication_slot_advance(%s, %s::pg_lsn)", (slot, lsn_text(lsn)))
