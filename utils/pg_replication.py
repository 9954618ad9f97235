"""What PostgreSQL says about logical replication: settings, the role, a publication, a slot.

Read-only queries over an ordinary SQLAlchemy connection, shared by the set-up tool
(``tools/postgres_cdc.py``: ``check``, ``setup``, ``drop``) and the slot's health check in
``python -m pipelines status`` (:mod:`sources.products.slot`). Nothing here writes.

A slot's *retained WAL* is ``pg_current_wal_lsn() - restart_lsn``: what the server keeps on disk for
it. Its *lag* is ``pg_current_wal_lsn() - confirmed_flush_lsn``: what the consumer has not confirmed
yet. Both grow while the pipeline is not running (docs/products.md, "Change data capture: set-up and
operation").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa

PLUGIN: Final = "pgoutput"
PUBLISHABLE_KINDS: Final = frozenset({"r", "p"})
"""Ordinary and partitioned tables; views and foreign tables cannot be published."""


@dataclass(frozen=True)
class SlotHealth:
    """One replication slot as ``pg_replication_slots`` shows it, with its WAL figures in bytes."""

    name: str
    plugin: str | None
    slot_type: str
    database: str | None
    active: bool
    wal_status: str | None
    """``reserved``, ``extended``, ``unreserved`` or ``lost`` (invalidated: unusable)."""
    retained_bytes: int | None
    """``pg_current_wal_lsn() - restart_lsn``; ``None`` once the slot is invalidated."""
    lag_bytes: int | None
    """``pg_current_wal_lsn() - confirmed_flush_lsn``."""

    @property
    def lost(self) -> bool:
        return self.wal_status == "lost"

    def describe(self) -> str:
        """``12.3 MB of WAL retained, 12.3 MB not yet confirmed, inactive``."""
        retained = "unknown" if self.retained_bytes is None else megabytes(self.retained_bytes)
        lag = "unknown" if self.lag_bytes is None else megabytes(self.lag_bytes)
        state = "active" if self.active else "inactive"
        status = f", wal_status {self.wal_status}" if self.wal_status not in (None, "reserved") else ""
        return f"{retained} of WAL retained, {lag} not yet confirmed, {state}{status}"


@dataclass(frozen=True)
class ServerSettings:
    """The settings logical decoding depends on, and how many slots and senders are in use."""

    wal_level: str
    max_replication_slots: int
    slots_used: int
    max_wal_senders: int
    senders_used: int
    max_slot_wal_keep_size_mb: int
    """-1: unlimited (a slot may retain WAL until the disk fills)."""
    version: int
    """``server_version_num``, e.g. 160004."""


@dataclass(frozen=True)
class RoleFacts:
    """The connected role's replication rights and the kind of server (for the fixes to print)."""

    name: str
    superuser: bool
    replication: bool
    """The ``REPLICATION`` attribute, or (RDS, Aurora) membership of ``rds_replication``."""
    platform: str
    """``rds`` (RDS or Aurora: the ``rds_replication`` role exists), ``cloudsql``
    (``cloudsqlsuperuser`` exists) or ``postgres`` (self-hosted, or anything else)."""
    may_create_in_database: bool
    """``CREATE`` on the current database, which ``CREATE PUBLICATION`` needs."""
    database: str


@dataclass(frozen=True)
class TableFacts:
    """What publishing one table depends on."""

    name: str
    kind: str
    """``pg_class.relkind``: ``r`` table, ``p`` partitioned, ``f`` foreign, ``v``/``m`` views."""
    owned: bool
    """The role owns it (or is a member of its owner), as ``CREATE``/``ALTER PUBLICATION`` need."""
    owner: str
    replica_identity: str
    """``d`` default (the primary key), ``f`` full, ``i`` an index, ``n`` nothing."""
    has_primary_key: bool

    @property
    def identifies_rows(self) -> bool:
        """Whether PostgreSQL can publish this table's updates and deletes: a default replica
        identity needs a primary-key constraint; ``full`` and ``using index`` always do."""
        return self.replica_identity in ("f", "i") or (self.replica_identity == "d" and self.has_primary_key)


SLOT_SQL: Final = sa.text(
    "select slot_name, plugin, slot_type, database, active, wal_status,"
    " case when restart_lsn is null then null"
    " else pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint end,"
    " case when confirmed_flush_lsn is null then null"
    " else pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint end"
    " from pg_catalog.pg_replication_slots where slot_name = :slot"
)

SETTINGS_SQL: Final = sa.text(
    "select current_setting('wal_level'),"
    " current_setting('max_replication_slots')::int,"
    " (select count(*) from pg_catalog.pg_replication_slots)::int,"
    " current_setting('max_wal_senders')::int,"
    " (select count(*) from pg_catalog.pg_stat_activity where backend_type = 'walsender')::int,"
    " current_setting('max_slot_wal_keep_size')::int,"
    " current_setting('server_version_num')::int"
)

ROLE_SQL: Final = sa.text(
    "select r.rolname, r.rolsuper, r.rolreplication,"
    " exists (select 1 from pg_catalog.pg_roles where rolname = 'rds_replication'),"
    " exists (select 1 from pg_catalog.pg_roles where rolname = 'cloudsqlsuperuser'),"
    " has_database_privilege(current_database(), 'CREATE'), current_database()"
    " from pg_catalog.pg_roles r where r.rolname = current_user"
)
RDS_REPLICATION_SQL: Final = sa.text("select pg_has_role(current_user, 'rds_replication', 'member')")
"""Asked only where the role exists: ``pg_has_role`` raises for an unknown role."""

TABLES_SQL: Final = sa.text(
    "select c.relname, c.relkind, pg_has_role(current_user, c.relowner, 'USAGE'),"
    " pg_get_userbyid(c.relowner), c.relreplident,"
    " exists (select 1 from pg_catalog.pg_constraint k where k.conrelid = c.oid and k.contype = 'p')"
    " from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
    " where n.nspname = :schema and c.relname = any(:names)"
)

PUBLICATION_SQL: Final = sa.text(
    "select p.pubname, pg_has_role(current_user, p.pubowner, 'USAGE'), p.puballtables,"
    " p.pubinsert and p.pubupdate and p.pubdelete and p.pubtruncate"
    " from pg_catalog.pg_publication p where p.pubname = :publication"
)

PUBLICATION_TABLES_SQL: Final = sa.text(
    "select schemaname, tablename from pg_catalog.pg_publication_tables where pubname = :publication"
)


def read_slot(connection: sa.Connection, slot: str) -> SlotHealth | None:
    """The slot named ``slot``, or ``None`` when it does not exist."""
    row = connection.execute(SLOT_SQL, {"slot": slot}).one_or_none()
    if row is None:
        return None
    name, plugin, slot_type, database, active, wal_status, retained, lag = row
    return SlotHealth(
        name=str(name),
        plugin=plugin,
        slot_type=str(slot_type),
        database=database,
        active=bool(active),
        wal_status=wal_status,
        retained_bytes=None if retained is None else int(retained),
        lag_bytes=None if lag is None else int(lag),
    )


def read_settings(connection: sa.Connection) -> ServerSettings:
    row = connection.execute(SETTINGS_SQL).one()
    return ServerSettings(*(row[0], *(int(value) for value in row[1:])))


def read_role(connection: sa.Connection) -> RoleFacts:
    row = connection.execute(ROLE_SQL).one()
    name, superuser, replication, on_rds, on_cloudsql, may_create, database = row
    if on_rds:
        replication = replication or bool(connection.execute(RDS_REPLICATION_SQL).scalar())
    platform = "rds" if on_rds else "cloudsql" if on_cloudsql else "postgres"
    return RoleFacts(str(name), bool(superuser), bool(replication), platform, bool(may_create), str(database))


def read_tables(connection: sa.Connection, schema: str, names: Sequence[str]) -> dict[str, TableFacts]:
    """Publishing facts of the named tables of ``schema`` (names missing from the result do not exist)."""
    rows = connection.execute(TABLES_SQL, {"schema": schema, "names": list(names)})
    return {
        str(name): TableFacts(str(name), str(kind), bool(owned), str(owner), str(identity), bool(has_key))
        for name, kind, owned, owner, identity, has_key in rows
    }


@dataclass(frozen=True)
class Publication:
    name: str
    owned: bool
    all_tables: bool
    publishes_every_change: bool
    """It publishes inserts, updates, deletes and truncates (a change it leaves out is never seen)."""
    tables: frozenset[tuple[str, str]]
    """``(schema, table)`` pairs it holds."""

    def tables_in(self, schema: str) -> set[str]:
        return {table for table_schema, table in self.tables if table_schema == schema}


def read_publication(connection: sa.Connection, publication: str) -> Publication | None:
    row = connection.execute(PUBLICATION_SQL, {"publication": publication}).one_or_none()
    if row is None:
        return None
    name, owned, all_tables, every_change = row
    tables = connection.execute(PUBLICATION_TABLES_SQL, {"publication": publication})
    return Publication(
        name=str(name),
        owned=bool(owned),
        all_tables=bool(all_tables),
        publishes_every_change=bool(every_change),
        tables=frozenset((str(schema), str(table)) for schema, table in tables),
    )


def megabytes(count: int) -> str:
    """Bytes as ``12.3 MB`` (MiB, as PostgreSQL's ``pg_size_pretty`` counts them)."""
    return f"{count / 2**20:,.1f} MB"


def identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (safe for any name, reserved words included)."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def qualified(schema: str, tables: Iterable[str]) -> str:
    return ", ".join(f"{identifier(schema)}.{identifier(table)}" for table in tables)
